"""What one small request may cost the etcd API's server: nested transactions,
answers larger than --max-response-bytes, deeply nested JSON and huge lease
TTLs are refused with etcd's errors (or clear ones where etcd has none), the
memory of a large answer goes back to the system, and the embedded store's
history and size stay bounded (automatic compaction, --quota-backend-bytes)."""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import BIN, free_port, wait_for

MIB = 1024 * 1024


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

    def __init__(self, endpoint, timeout=60):
        host, port = endpoint.split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def call(self, path, body):
        """(HTTP status, decoded answer); `body` is sent as is when bytes."""
        self.conn.request("POST", path, body=body if isinstance(body, bytes) else json.dumps(body))
        r = self.conn.getresponse()
        return r.status, json.loads(r.read())

    def post(self, path, body):
        status, answer = self.call(path, body)
        if status != 200:
            raise RuntimeError(f"{path}: {status} {answer}")
        return answer

    def close(self):
        self.conn.close()


def nested_reads(outer, inner, key):
    return {"success": [{"request_txn": {"success": [{"request_range": {"key": b64(key)}}] * inner}}] * outer}


class EtcdPortTest(unittest.TestCase):
    """A zeppelin server of its own per test, its etcd port on a free loopback port (start_server)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zeppelin-etcd-port-")
        self.home = os.path.join(self.dir, "home")
        self.endpoint = f"127.0.0.1:{free_port()}"
        self.log = open(os.path.join(self.dir, "zeppelin.log"), "a")
        self.server = None

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

    def start_server(self, *flags):
        # Auth off: these clients use the port anonymously (auth: test_store_auth.py).
        env = dict(os.environ, ZEPPELIN_HOME=self.home)
        if "ASAN_OPTIONS" in env:
            # AddressSanitizer keeps freed memory aside (256 MiB by default)
            # instead of reusing it: without that, the server's growth is its own.
            env["ASAN_OPTIONS"] += ":quarantine_size_mb=0"
        self.server = subprocess.Popen([BIN, "server", "--home", self.home, "--etcd-listen", self.endpoint,
                                        "--insecure-store", *flags], stdout=self.log, stderr=subprocess.STDOUT,
                                       env=env)

        def ready():
            # The etcd port opens before the API's socket: a test may use either.
            if not os.path.exists(os.path.join(self.home, "zeppelin.sock")):
                return False
            try:
                Gateway(self.endpoint).post("/v3/maintenance/status", {})
                return True
            except (OSError, RuntimeError):
                return False

        wait_for(ready, timeout=30, what=f"the etcd API on {self.endpoint} and the API's socket")
        return Gateway(self.endpoint)



class EtcdRequestLimitsTest(EtcdPortTest):
    def test_deeply_nested_json_is_refused_before_it_is_parsed(self):
        client = self.start_server()
        client.post("/v3/kv/put", {"key": b64("k"), "value": b64("v")})
        before = rss_bytes(self.server.pid)
        started = time.monotonic()
        for path in ("/v3/kv/range", "/v3/kv/txn", "/v3/lease/grant"):
            status, answer = client.call(path, b"[" * (8 * MIB))
            self.assertEqual(status, 400, answer)
            self.assertIn("nested deeper than 64 levels", answer["message"])
            status, answer = client.call(path, b'{"a":' * (1 * MIB))
            self.assertEqual(status, 400, answer)
        self.assertLess(time.monotonic() - started, 20)
        grown = rss_bytes(self.server.pid) - before
        self.assertLess(grown, 48 * MIB, f"the server grew by {grown / MIB:.0f} MiB")
        # Shallow bodies are served as before.
        self.assertEqual(client.post("/v3/kv/range", {"key": b64("k")})["kvs"][0]["value"], b64("v"))

    def test_control_api_refuses_deeply_nested_json(self):
        self.start_server()
        before = rss_bytes(self.server.pid)
        for body in (b"[" * (6 * MIB), b"[" * 200_000 + b"]" * 200_000, b'{"spec_file":' * 100_000):
            conn = http.client.HTTPConnection("localhost", timeout=30)
            conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.sock.settimeout(30)
            conn.sock.connect(os.path.join(self.home, "zeppelin.sock"))
            conn.request("POST", "/v1/systems", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            answer = r.read().decode()
            conn.close()
            self.assertEqual(r.status, 400, answer[:300])
            self.assertIn("nested deeper than 64 levels", answer)
        grown = rss_bytes(self.server.pid) - before
        self.assertLess(grown, 48 * MIB, f"the server grew by {grown / MIB:.0f} MiB")

    def test_nested_transactions_over_the_operation_cap_are_refused(self):
        client = self.start_server()
        client.post("/v3/kv/put", {"key": b64("k"), "value": b64(b"v" * 4096)})
        before = rss_bytes(self.server.pid)
        started = time.monotonic()
        status, answer = client.call("/v3/kv/txn", nested_reads(128, 128, "k"))
        self.assertEqual(status, 400, str(answer)[:300])
        self.assertEqual(answer["message"], "etcdserver: too many operations in txn request")
        self.assertLess(time.monotonic() - started, 10)
        grown = rss_bytes(self.server.pid) - before
        self.assertLess(grown, 32 * MIB, f"the server grew by {grown / MIB:.0f} MiB")
        # 128 operations in all are served.
        answer = client.post("/v3/kv/txn", nested_reads(64, 1, "k"))
        self.assertEqual(len(answer["responses"]), 64)

    def test_answers_over_max_response_bytes_get_429_and_paging_works(self):
        client = self.start_server("--max-response-bytes", str(MIB))
        for i in range(4):
            client.post("/v3/kv/put", {"key": b64(f"big/{i}"), "value": b64(b"x" * (400 * 1024))})
        status, answer = client.call("/v3/kv/range", {"key": b64("big/"), "range_end": b64("big0")})
        self.assertEqual(status, 429, answer)
        self.assertEqual(answer["code"], 8)  # RESOURCE_EXHAUSTED
        self.assertIn("limit", answer["message"])
        page = client.post("/v3/kv/range", {"key": b64("big/"), "range_end": b64("big0"), "limit": "2"})
        self.assertEqual(len(page["kvs"]), 2)
        self.assertTrue(page["more"])
        status, answer = client.call("/v3/kv/txn", {"success": [{"request_range": {"key": b64("big/0")}}] * 3})
        self.assertEqual(status, 429, answer)

    def test_memory_of_large_answers_is_given_back(self):
        client = self.start_server()
        value = b64(b"m" * MIB)
        for i in range(24):
            client.post("/v3/kv/put", {"key": b64(f"m/{i:02d}"), "value": value})
        client.post("/v3/kv/range", {"key": b64("m/00")})
        before = rss_bytes(self.server.pid)
        peak = before
        for _ in range(3):  # 24 MiB of values: 32 MiB of JSON a time
            answer = client.post("/v3/kv/range", {"key": b64("m/"), "range_end": b64("m0")})
            self.assertEqual(len(answer["kvs"]), 24)
            peak = max(peak, rss_bytes(self.server.pid))
        time.sleep(0.5)
        after = rss_bytes(self.server.pid)
        print(f"\nRSS before {before / MIB:.0f} MiB, after three 24 MiB ranges {after / MIB:.0f} MiB",
              flush=True)
        self.assertLess(after - before, 24 * MIB, f"RSS went from {before / MIB:.0f} to {after / MIB:.0f} MiB")

    def test_lease_ttl_over_etcds_maximum_is_refused(self):
        client = self.start_server()
        for ttl in ("9223372036854775807", "9000000001"):
            status, answer = client.call("/v3/lease/grant", {"TTL": ttl})
            self.assertEqual(status, 400, answer)
            self.assertEqual(answer["message"], "etcdserver: too large lease TTL")
        granted = client.post("/v3/lease/grant", {"TTL": "9000000000"})
        time.sleep(1.1)
        ttl = client.post("/v3/lease/timetolive", {"ID": granted["ID"]})
        self.assertGreater(int(ttl["TTL"]), 8_000_000_000)

    def test_quota_refuses_writes_with_nospace_until_compaction_frees_space(self):
        client = self.start_server("--quota-backend-bytes", str(2 * MIB), "--auto-compaction-retention", "0")
        value = b64(b"q" * (256 * 1024))
        refused = None
        for i in range(40):  # 10 MiB at most
            status, answer = client.call("/v3/kv/put", {"key": b64("q"), "value": value})
            if status != 200:
                refused = (status, answer)
                break
        self.assertIsNotNone(refused, "no write was refused")
        status, answer = refused
        self.assertEqual(status, 429, answer)
        self.assertEqual(answer["message"], "etcdserver: mvcc: database space exceeded")
        alarms = client.post("/v3/maintenance/alarm", {"action": "GET"})
        self.assertEqual([a["alarm"] for a in alarms["alarms"]], ["NOSPACE"])
        errors = client.post("/v3/maintenance/status", {}).get("errors", [])
        self.assertTrue(any("alarm:NOSPACE" in e for e in errors), errors)
        # Leases and transactions with a put are refused too; reads and deletes are not.
        self.assertEqual(client.call("/v3/lease/grant", {"TTL": "10"})[0], 429)
        self.assertEqual(client.call("/v3/kv/txn", {"success": [{"request_put": {"key": b64("t"),
                                                                                 "value": b64("1")}}]})[0], 429)
        revision = client.post("/v3/kv/range", {"key": b64("q")})["header"]["revision"]
        client.post("/v3/kv/deleterange", {"key": b64("never-there")})
        # Compaction frees the old versions' pages: the alarm lowers and writes are accepted again.
        client.post("/v3/kv/compaction", {"revision": revision})
        client.post("/v3/kv/put", {"key": b64("q"), "value": b64("small")})
        self.assertEqual(client.post("/v3/maintenance/alarm", {"action": "GET"}).get("alarms", []), [])
        # Disarming by hand (etcdctl alarm disarm) lowers it too; it comes back while over the quota.
        for i in range(40):
            status, answer = client.call("/v3/kv/put", {"key": b64("q"), "value": value})
            if status != 200:
                break
        self.assertEqual(status, 429)
        disarmed = client.post("/v3/maintenance/alarm", {"action": "DEACTIVATE", "alarm": "NOSPACE"})
        self.assertEqual([a["alarm"] for a in disarmed["alarms"]], ["NOSPACE"])
        client.post("/v3/kv/put", {"key": b64("after-disarm"), "value": b64("1")})

    def test_automatic_compaction_keeps_the_last_revisions(self):
        client = self.start_server("--auto-compaction-retention", "10")
        first = int(client.post("/v3/kv/put", {"key": b64("a"), "value": b64("0")})["header"]["revision"])
        for i in range(1, 30):
            last = int(client.post("/v3/kv/put", {"key": b64("a"), "value": b64(str(i))})["header"]["revision"])
        status, answer = client.call("/v3/kv/range", {"key": b64("a"), "revision": str(first)})
        self.assertEqual(status, 400, answer)
        self.assertEqual(answer["message"], "etcdserver: mvcc: required revision has been compacted")
        # The last 10 revisions are kept.
        old = client.post("/v3/kv/range", {"key": b64("a"), "revision": str(last - 9)})
        self.assertEqual(old["kvs"][0]["value"], b64(str(29 - 9)))


if __name__ == "__main__":
    unittest.main()
