"""The Python SDK (sdk/python) end to end: the same calls against a real etcd
(Debian's etcd-server, started here) and against `zeppelin server
--etcd-listen` must give the same answers; then what only zeppelin has:
a replica that finds its identity and its peers through the SDK."""
import json
import os
import sys
import tempfile
import threading
import time
import unittest

from harness import Servers, ZeppelinTestCase, free_port, store_root_password, wait_for
from test_etcd_api import ctl

SDK = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "sdk", "python"))
sys.path.insert(0, SDK)
import zeppelin  # noqa: E402


def scenario(client):
    """Every kind of call once; returns what a program would see, revision-independent."""
    seen = []
    client.put("sdk/a", "1")
    client.put("sdk/b", b"\x00\xff")
    seen.append(("get", client.get("sdk/a").value, client.get("sdk/missing")))
    seen.append(("prefix", [(kv.key, kv.value, kv.version) for kv in client.get_prefix("sdk/")]))
    seen.append(("keys_only", [kv.value for kv in client.get_prefix("sdk/", keys_only=True)]))
    txn = client.txn([zeppelin.compare_value("sdk/a", "==", "1")], [zeppelin.op_put("sdk/c", "3")],
                     [zeppelin.op_get("sdk/a")])
    seen.append(("txn", txn.succeeded))
    txn = client.txn([zeppelin.compare_version("sdk/a", ">", 5)], [zeppelin.op_delete("sdk/", prefix=True)],
                     [zeppelin.op_get("sdk/", prefix=True)])
    seen.append(("txn-failure", txn.succeeded, len(txn.responses[0]["response_range"]["kvs"])))
    seen.append(("put_if_absent", client.put_if_absent("sdk/a", "x"), client.put_if_absent("sdk/d", "4")))

    # A watch from a past revision replays, then follows live changes.
    start = client.get("sdk/a").mod_revision
    with client.watch("sdk/", prefix=True, start_revision=start, prev_kv=True) as watch:
        client.put("sdk/a", "2")
        client.delete("sdk/b")
        events = [next(watch) for _ in range(5)]
    seen.append(("watch", [(e.type, e.kv.key, e.kv.value, e.prev_kv.value if e.prev_kv else None)
                           for e in events]))

    with client.lease(30) as lease:
        client.put("sdk/leased", "v", lease=lease.id)
        status = lease.time_to_live()
        seen.append(("lease", lease.keep_alive_once(), status["granted_ttl"], status["keys"]))
    seen.append(("revoked", client.get("sdk/leased")))

    with client.lock("sdk-lock") as lock:
        seen.append(("lock", lock.key.startswith(b"sdk-lock/")))
    seen.append(("no leader", client.leader("sdk-election")))
    leadership = client.campaign("sdk-election", "me")
    leadership.proclaim("me, again")
    seen.append(("leader", client.leader("sdk-election")))
    leadership.resign()
    seen.append(("resigned", client.leader("sdk-election")))

    for bad in (lambda: client.get(""), lambda: client.put("sdk/big", b"x" * (2 << 20))):
        try:
            bad()
            seen.append(("no error",))
        except zeppelin.EtcdError as e:
            seen.append(("error", e.code, e.message, e.http_status))
    seen.append(("deleted", client.delete_prefix("sdk/")))
    client.close()
    return seen


class PythonSdkAgainstEtcdAndZeppelin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servers = Servers(tempfile.mkdtemp(prefix="zeppelin-sdk-"))
        cls.etcd_endpoint, cls.zeppelin_endpoint = cls.servers.etcd_and_zeppelin("sdk")

    @classmethod
    def tearDownClass(cls):
        cls.servers.stop()

    def test_same_answers_from_both(self):
        etcd = scenario(zeppelin.Client([self.etcd_endpoint]))
        ours = scenario(zeppelin.Client([self.zeppelin_endpoint]))
        self.assertEqual(etcd, ours)
        seen = dict((entry[0], entry[1:]) for entry in ours)
        self.assertEqual(seen["get"], (b"1", None))
        self.assertEqual(seen["prefix"], ([(b"sdk/a", b"1", 1), (b"sdk/b", b"\x00\xff", 1)],))
        self.assertEqual(seen["txn"], (True,))
        self.assertEqual(seen["txn-failure"], (False, 3))
        self.assertEqual(seen["put_if_absent"], (False, True))
        self.assertEqual(seen["watch"][0], [
            ("PUT", b"sdk/a", b"1", None), ("PUT", b"sdk/b", b"\x00\xff", None), ("PUT", b"sdk/c", b"3", None),
            ("PUT", b"sdk/d", b"4", None), ("PUT", b"sdk/a", b"2", b"1")])
        self.assertEqual(seen["lease"], (30, 30, [b"sdk/leased"]))
        self.assertEqual(seen["revoked"], (None,))
        self.assertEqual(seen["leader"], (b"me, again",))
        self.assertEqual(seen["resigned"], (None,))
        self.assertIn(("error", 3, "etcdserver: key is not provided", 400), ours)
        self.assertIn(("error", 8, "grpc: received message larger than max (2097166 vs. 2097152)", 429), ours)

    def test_lock_excludes_other_holders(self):
        client = zeppelin.Client([self.zeppelin_endpoint])
        client.put("t/counter", "0")
        holders, most = [0], [0]
        guard = threading.Lock()

        def work():
            with zeppelin.Client([self.zeppelin_endpoint]) as mine:
                count(mine)

        def count(mine):
            for _ in range(5):
                with mine.lock("sdk-counter-lock"):
                    with guard:
                        holders[0] += 1
                        most[0] = max(most[0], holders[0])
                    value = int(mine.get("t/counter").value)  # read, wait, write: lost without the lock
                    time.sleep(0.005)
                    mine.put("t/counter", str(value + 1))
                    with guard:
                        holders[0] -= 1

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        self.assertEqual(int(client.get("t/counter").value), 20)
        self.assertEqual(most[0], 1)
        client.close()

    def test_failover_to_the_next_endpoint_and_errors_without_one(self):
        dead = f"127.0.0.1:{free_port()}"
        client = zeppelin.Client(f"{dead},http://{self.zeppelin_endpoint}")
        self.assertGreater(client.put("t/failover", "ok"), 0)
        self.assertEqual(client.get("t/failover").value, b"ok")
        with self.assertRaises(zeppelin.EtcdError) as raised:
            zeppelin.Client([dead]).get("t/failover")
        self.assertEqual(raised.exception.code, zeppelin.client.UNAVAILABLE)
        self.assertIn(dead, raised.exception.message)
        with self.assertRaises(ValueError):
            zeppelin.Client("ftp://127.0.0.1:1")  # http and https only

    def test_user_and_password_against_auth(self):
        endpoint = self.zeppelin_endpoint
        for args in (["user", "add", "root:rootpw"], ["auth", "enable"]):
            self.assertEqual(ctl(endpoint, *args).returncode, 0)
        try:
            client = zeppelin.Client([endpoint], user="root", password="rootpw")
            client.put("t/auth", "yes")
            self.assertEqual(client.get("t/auth").value, b"yes")
            with self.assertRaises(zeppelin.EtcdError) as raised:
                zeppelin.Client([endpoint], token="").get("t/auth")
            self.assertEqual((raised.exception.code, raised.exception.message), (3, "etcdserver: user name is empty"))
            with self.assertRaises(zeppelin.EtcdError) as raised:
                zeppelin.Client([endpoint], user="root", password="wrong")
            self.assertIn("authentication failed", raised.exception.message)
        finally:
            self.assertEqual(ctl(endpoint, "--user=root:rootpw", "auth", "disable").returncode, 0)
            ctl(endpoint, "user", "delete", "root")


class PythonSdkInAReplica(ZeppelinTestCase):
    def test_replica_identity_and_peers(self):
        app = os.path.join(self.dir, "app.py")
        with open(app, "w") as f:
            f.write(
                "import json, sys, time, zeppelin\n"
                "me = zeppelin.replica()\n"
                "store = zeppelin.Client()\n"
                "for _ in range(200):\n"
                "    peers = store.peers(me.system, me.service)\n"
                "    if len(peers) == me.replicas: break\n"
                "    time.sleep(0.1)\n"
                "print('SDK', json.dumps({'index': me.index, 'host': me.host, 'port': me.ports['http'],\n"
                "      'peers': [[p['address'], p['ports']['http']] for p in peers]}), flush=True)\n"
                "store.put(f'apps/{me.service}/{me.index}', me.host)\n"
                "time.sleep(600)\n")
        self.write_spec(f"""
            name: sdk
            services:
              app:
                command: ["python3", "{app}"]
                env: {{PYTHONPATH: "{SDK}"}}
                ports: [{{name: http, port: 7000}}]
                replicas: 2
            """)
        self.zeppelin("run", "-d")
        rows = {r["replica"]: r for r in self.ps("sdk")}
        wait_for(lambda: self.zeppelin("logs", "sdk/app").stdout.count("SDK ") == 2, timeout=60,
                 what="both replicas to print what the SDK saw")
        seen = {}
        for line in self.zeppelin("logs", "sdk/app").stdout.splitlines():
            if "SDK " in line:
                report = json.loads(line.split("SDK ", 1)[1])
                seen[report["index"]] = report
        addresses = [[rows[i]["address"].split(":")[0], 7000] for i in (0, 1)]
        for i in (0, 1):
            self.assertEqual(seen[i]["host"], addresses[i][0])
            self.assertEqual(seen[i]["port"], 7000)
            self.assertEqual(seen[i]["peers"], addresses)
        store = zeppelin.Client(self.etcd_endpoints(), user="root", password=store_root_password(self.home))
        wait_for(lambda: len(store.get_prefix("apps/app/")) == 2, what="both replicas' writes")
        self.assertEqual(sorted(kv.value.decode() for kv in store.get_prefix("apps/app/")),
                         sorted(a for a, _ in addresses))
        with self.assertRaises(RuntimeError):
            zeppelin.replica({})


if __name__ == "__main__":
    unittest.main()
