"""The examples in examples/ run as documented, including a real 3-member etcd
cluster built from the replica contract alone."""
import json
import os
import shutil
import signal
import subprocess
import unittest
import urllib.request

from harness import ZeppelinTestCase, wait_for

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")


class ExamplesTest(ZeppelinTestCase):
    def test_shop_serves_through_web_from_every_db_replica(self):
        self.zeppelin("run", "-d", os.path.join(EXAMPLES, "shop"), "--timeout", "60s")
        rows = self.ps("shop")
        self.assertEqual([r["state"] for r in rows], ["running"] * 5)
        web = next(r["address"] for r in rows if r["service"] == "web")
        seen = set()
        for _ in range(6):
            with urllib.request.urlopen(f"http://{web}/", timeout=5) as r:
                seen.add(r.read().decode().split(":")[0])
        self.assertEqual(seen, {"db replica 0", "db replica 1", "db replica 2"})

    @unittest.skipUnless(shutil.which("etcd") and shutil.which("etcdctl"), "needs Debian's etcd-server and etcd-client")
    def test_etcd_cluster_forms_a_quorum_and_survives_a_killed_member(self):
        self.zeppelin("run", "-d", "-f", os.path.join(EXAMPLES, "etcd-cluster", "zeppelin.yaml"), "--timeout", "90s")
        rows = self.ps("etcd")
        self.assertEqual([r["health"] for r in rows], ["healthy"] * 3)
        endpoints = ",".join(r["address"].rsplit(":", 1)[0] + ":2379" for r in rows)

        def etcdctl(*args, check=True):
            r = subprocess.run(["etcdctl", "--endpoints", endpoints, "--command-timeout", "15s", *args],
                               env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True, timeout=30)
            if check and r.returncode != 0:
                raise AssertionError(r.stderr + self.zeppelin("logs", "etcd", "--tail", "15").stdout)
            return r.stdout

        members = etcdctl("member", "list", "-w", "json")
        self.assertEqual(len(json.loads(members)["members"]), 3)
        etcdctl("put", "greeting", "hello")
        victim = rows[1]
        os.kill(victim["pid"], signal.SIGKILL)
        # The quorum keeps serving while the member is replaced (after a leader
        # election, if the victim was the leader: clients retry, so do we)...
        wait_for(lambda: subprocess.run(["etcdctl", "--endpoints", endpoints, "--command-timeout", "5s",
                                         "put", "during", "outage"], env=dict(os.environ, ETCDCTL_API="3"),
                                        capture_output=True, timeout=30).returncode == 0,
                 timeout=60, interval=0.5, what="a write accepted by the remaining quorum")
        # ...and the member comes back with its data dir and catches up.
        wait_for(lambda: (r := self.replica("etcd", 1, "etcd")) and r["pid"] != victim["pid"]
                 and r["health"] == "healthy", timeout=60, what="member 1 rejoined")
        single = victim["address"].rsplit(":", 1)[0] + ":2379"
        out = subprocess.run(["etcdctl", "--endpoints", single, "get", "during", "--print-value-only"],
                             env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True, timeout=30)
        self.assertEqual(out.stdout.strip(), "outage")
        self.assertEqual(etcdctl("get", "greeting", "--print-value-only").strip(), "hello")


if __name__ == "__main__":
    unittest.main()
