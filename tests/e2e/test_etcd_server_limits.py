"""The etcd API's server under stress: a watcher that stops reading must not
make the server's memory grow with the events it misses (and must get all of
them once it reads again), and acknowledged writes survive `kill -9`."""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import BIN, wait_for

MIB = 1024 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class Gateway:
    """A keep-alive HTTP/1.1 connection to the JSON gateway."""

    def __init__(self, endpoint):
        host, port = endpoint.split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def post(self, path, body):
        self.conn.request("POST", path, body=json.dumps(body))
        r = self.conn.getresponse()
        answer = json.loads(r.read())
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {answer}")
        return answer

    def close(self):
        self.conn.close()


class EtcdServerLimitsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zeppelin-etcd-limits-")
        self.home = os.path.join(self.dir, "home")
        self.endpoint = f"127.0.0.1:{free_port()}"
        self.log = open(os.path.join(self.dir, "zeppelin.log"), "a")
        self.server = None
        self.start_server()

    def tearDown(self):
        if self.server and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start_server(self):
        self.server = subprocess.Popen([BIN, "server", "--home", self.home, "--etcd-listen", self.endpoint],
                                       stdout=self.log, stderr=subprocess.STDOUT,
                                       env=dict(os.environ, ZEPPELIN_HOME=self.home))

        def ready():
            try:
                Gateway(self.endpoint).post("/v3/maintenance/status", {})
                return True
            except (OSError, RuntimeError):
                return False

        wait_for(ready, timeout=30, what=f"the etcd API on {self.endpoint}")

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


if __name__ == "__main__":
    unittest.main()
