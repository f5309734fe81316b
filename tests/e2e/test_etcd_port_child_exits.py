"""The etcd port keeps serving while replicas crash-loop. Every child exit is a
SIGCHLD to the server; a thread of the etcd API that does not block it sees
its blocking accept() or read() fail with EINTR, and must try again instead of
ending (the port used to stop accepting within seconds, silently)."""
import http.client
import json
import os
import subprocess
import threading
import time
import unittest

from harness import ETCDCTL, ZeppelinTestCase, wait_for

REPLICAS = 200
HAMMER_SECONDS = 30
GATEWAY_CLIENTS = 3
REQUEST_TIMEOUT = 10


class EtcdPortChildExitsTest(ZeppelinTestCase):
    def status(self, host, port):
        """Maintenance.Status through the JSON gateway on a connection of its own
        (a fresh accept() each time); answered without authentication."""
        conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
        try:
            conn.request("POST", "/v3/maintenance/status", body="{}", headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise AssertionError(f"status: {r.status} {body!r}")
            if "header" not in json.loads(body):
                raise AssertionError(f"status without a header: {body!r}")
        finally:
            conn.close()

    def restarts(self):
        return sum(row.get("restarts", 0) for row in self.ps("storm"))

    def test_port_answers_every_request_while_replicas_crash_loop(self):
        self.write_spec(f"""\
            name: storm
            services:
              crash:
                replicas: {REPLICAS}
                command: ["sh", "-c", "exit 1"]
            """)
        # The replicas never become ready: apply and return.
        self.zeppelin("run", "-d", "--timeout", "1s", check=False)
        endpoint = self.etcd_endpoints().split(",")[0]
        self.assertTrue(endpoint.startswith("http://127.0.0.1:"), endpoint)
        host, port = endpoint[len("http://"):].rsplit(":", 1)
        port = int(port)
        wait_for(lambda: self.restarts() >= REPLICAS, timeout=30, what="every replica to crash at least once")

        lock = threading.Lock()
        answered = {"gateway": 0, "etcdctl": 0}
        failures = []
        deadline = time.monotonic() + HAMMER_SECONDS

        def failed(what, error):
            with lock:
                if len(failures) < 20:
                    failures.append(f"{time.monotonic() - (deadline - HAMMER_SECONDS):.1f}s {what}: {error!r}")
                else:
                    failures.append(None)

        def gateway_client():
            while time.monotonic() < deadline:
                try:
                    self.status(host, port)
                    with lock:
                        answered["gateway"] += 1
                except Exception as e:  # a dead port shows as a refused, reset or timed-out request
                    failed("POST /v3/maintenance/status", e)
                    time.sleep(0.2)

        def etcdctl_client():
            while time.monotonic() < deadline:
                try:
                    # HOST:PORT: etcdctl 3.4 sends "http://HOST:PORT" as :authority, which the gRPC
                    # server behind the front refuses (RST_STREAM PROTOCOL_ERROR) on Maintenance calls.
                    r = subprocess.run([ETCDCTL, f"--endpoints={host}:{port}", "--command-timeout=10s",
                                        "--dial-timeout=10s", "endpoint", "status"],
                                       env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True,
                                       timeout=30)
                    if r.returncode != 0:
                        raise AssertionError(f"exited {r.returncode}: {r.stderr.strip()}")
                    with lock:
                        answered["etcdctl"] += 1
                except Exception as e:
                    failed("etcdctl endpoint status", e)
                time.sleep(0.2)

        threads = [threading.Thread(target=gateway_client) for _ in range(GATEWAY_CLIENTS)]
        threads.append(threading.Thread(target=etcdctl_client))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=HAMMER_SECONDS + 60)
        self.assertFalse(any(t.is_alive() for t in threads), "a client did not finish")

        restarts = self.restarts()
        print(f"answered {answered} while the replicas restarted {restarts} times in all")
        self.assertEqual(failures, [], f"{len(failures)} request(s) not answered; answered: {answered}")
        self.assertGreater(answered["gateway"], 100)
        self.assertGreater(answered["etcdctl"], 5)
        self.assertGreater(restarts, 2 * REPLICAS, "the replicas were not crash-looping")
        # And the port still takes a new connection.
        self.status(host, port)


if __name__ == "__main__":
    unittest.main()
