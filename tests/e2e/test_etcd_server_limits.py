"""The etcd API's server under stress: a watcher that stops reading must not
make the server's memory grow with the events it misses (and must get all of
them once it reads again), acknowledged writes survive `kill -9`, and hostile
HTTP/2 connections neither crash the server nor stop it serving others."""
import base64
import http.client
import json
import os
import random
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest

from harness import BIN, ETCDCTL, wait_for
from test_etcd_request_limits import MIB, EtcdPortTest, Gateway, b64, rss_bytes


class EtcdServerLimitsTest(EtcdPortTest):
    def setUp(self):
        super().setUp()
        self.start_server()

    def test_slow_watcher_keeps_memory_bounded_and_misses_nothing(self):
        client = Gateway(self.endpoint)
        value = b64(b"v" * MIB)
        events = 32  # 32 MiB of events: four times what a stream may hold
        for i in range(8):  # the allocator's steady state for 1 MiB requests
            client.post("/v3/kv/put", {"key": b64("warmup"), "value": value})
        # What the same writes cost without a watcher (the store keeps its recent history in memory).
        before = rss_bytes(self.server.pid)
        for i in range(events):
            client.post("/v3/kv/put", {"key": b64(f"unwatched/{i:03d}"), "value": value})
        unwatched = rss_bytes(self.server.pid) - before
        before = rss_bytes(self.server.pid)

        # A watcher that reads nothing: headers only, then silence.
        host, port = self.endpoint.split(":")
        watcher = http.client.HTTPConnection(host, int(port), timeout=60)
        watcher.connect()
        watcher.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        watcher.request("POST", "/v3/watch", body=json.dumps({"create_request": {"key": b64("slow/"),
                                                                                  "range_end": b64("slow0")}}))
        stream = watcher.getresponse()
        first = json.loads(stream.readline())["result"]
        self.assertTrue(first["created"])
        start = int(first["header"]["revision"])

        for i in range(events):
            client.post("/v3/kv/put", {"key": b64(f"slow/{i:03d}"), "value": value})
        grown = rss_bytes(self.server.pid) - before - unwatched
        self.assertLess(grown, 40 * MIB, f"the server grew by {grown / MIB:.0f} MiB more for a watcher that does "
                                         f"not read than without it")

        # Reading again: every event, in order, none lost while paused.
        revisions = []
        while len(revisions) < events:
            line = stream.readline()
            self.assertTrue(line, "the watch stream ended")
            result = json.loads(line)["result"]
            self.assertFalse(result.get("canceled", False), result)
            for event in result.get("events", []):
                self.assertEqual(base64.b64decode(event["kv"]["value"]), b"v" * MIB)
                revisions.append(int(event["kv"]["mod_revision"]))
        self.assertEqual(revisions, list(range(start + 1, start + 1 + events)))
        watcher.close()
        client.close()

    def test_acknowledged_writes_survive_kill_9(self):
        acknowledged = {}
        lock = threading.Lock()
        stop = threading.Event()

        def writer(n):
            client = Gateway(self.endpoint)
            i = 0
            while not stop.is_set():
                key = f"crash/{n}/{i:06d}"
                try:
                    client.post("/v3/kv/put", {"key": b64(key), "value": b64(str(i))})
                except (OSError, RuntimeError, http.client.HTTPException, ValueError):
                    return  # the server is gone: this write was not acknowledged
                with lock:
                    acknowledged[key] = str(i)
                i += 1

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        wait_for(lambda: len(acknowledged) >= 300, timeout=60, what="300 acknowledged writes")
        self.server.send_signal(signal.SIGKILL)  # mid-run, with writes in flight
        self.server.wait()
        for t in threads:
            t.join(timeout=60)
        stop.set()
        self.start_server()

        client = Gateway(self.endpoint)
        stored = client.post("/v3/kv/range", {"key": b64("crash/"), "range_end": b64("crash0")})
        found = {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
                 for kv in stored.get("kvs", [])}
        missing = [k for k in acknowledged if found.get(k) != acknowledged[k]]
        self.assertEqual(missing, [], f"{len(missing)} of {len(acknowledged)} acknowledged writes lost")
        client.close()

    def test_hostile_http2_connections_leave_the_server_serving(self):
        def frame(kind, flags, stream, payload):
            return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload

        def literal(name, value):  # HPACK: a literal header field, not indexed
            return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value

        def headers(path):
            return b"".join(literal(n, v) for n, v in [
                (b":method", b"POST"), (b":scheme", b"http"), (b":path", path), (b":authority", b"x"),
                (b"content-type", b"application/grpc"), (b"te", b"trailers")])

        put, watch = headers(b"/etcdserverpb.KV/Put"), headers(b"/etcdserverpb.Watch/Watch")
        rng = random.Random(7)
        noise = lambda n: bytes(rng.getrandbits(8) for _ in range(rng.randint(0, n)))
        host, port = self.endpoint.split(":")
        for i in range(200):
            message = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"")
            kind = i % 4
            if kind == 0:  # garbage frames
                message += noise(300)
            elif kind == 1:  # a KV call with a bad gRPC message: compressed flag, wrong or huge length
                body = noise(50)
                length = rng.choice([len(body), len(body) + 3, 0xFFFFFFFF])
                message += frame(1, 4, 1, put) + frame(0, 1, 1, bytes([rng.choice([0, 1])]) +
                                                        struct.pack(">I", length) + body)
            elif kind == 2:  # many calls, each reset by the client before its request ends
                for stream in range(1, 40, 2):
                    message += frame(1, 4, stream, put) + frame(3, 0, stream, struct.pack(">I", 8)) + \
                        frame(0, 1, stream, b"\0" * 5)
            else:  # a relayed call with a garbage message, then the connection drops
                message += frame(1, 4, 1, watch) + frame(0, 0, 1, noise(100))
            with socket.create_connection((host, int(port)), timeout=5) as s:
                try:
                    s.sendall(message)
                    if i % 2:
                        s.recv(65536)
                except OSError:
                    pass  # the server may close first: that is an answer too
        self.assertIsNone(self.server.poll(), "the server died")
        r = subprocess.run([ETCDCTL, f"--endpoints={self.endpoint}", "put", "still", "serving"],
                           env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([ETCDCTL, f"--endpoints={self.endpoint}", "get", "still", "--print-value-only"],
                           env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout.strip(), "serving")


class EtcdIdleTimeoutTest(EtcdPortTest):
    def test_an_http2_connection_with_no_call_is_ended_after_the_idle_timeout(self):
        self.start_server("--etcd-idle-timeout", "1s")
        host, port = self.endpoint.split(":")
        started = time.monotonic()
        got = b""
        with socket.create_connection((host, int(port)), timeout=20) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0\0\0\4\0\0\0\0\0")
            while chunk := s.recv(65536):
                got += chunk
        elapsed = time.monotonic() - started
        kinds, at = [], 0
        while at + 9 <= len(got):
            kinds.append(got[at + 3])
            at += 9 + int.from_bytes(got[at:at + 3], "big")
        self.assertEqual(kinds[-1:], [7], "GOAWAY, then the server closes")
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 15)


if __name__ == "__main__":
    unittest.main()
