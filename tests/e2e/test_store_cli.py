"""`zeppelin store snapshot save|restore`: backup (through the running server,
or offline) and restore of the coordination store, including a snapshot
taken online with etcdctl."""
import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import BIN, wait_for
from test_etcd_api import ctl, free_port


class StoreSnapshotCliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zeppelin-store-cli-")
        self.home = os.path.join(self.dir, "home")
        self.env = dict(os.environ, ZEPPELIN_HOME=self.home)
        self.endpoint = f"127.0.0.1:{free_port()}"
        self.server = None

    def tearDown(self):
        self.stop_server()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start_server(self):
        self.log = open(os.path.join(self.dir, "server.log"), "a")
        # Auth off: etcdctl writes and snapshots anonymously here (auth: test_store_auth.py).
        self.server = subprocess.Popen([BIN, "server", "--home", self.home, "--etcd-listen", self.endpoint,
                                        "--insecure-store"],
                                       env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: ctl(self.endpoint, "endpoint", "status").returncode == 0, timeout=30,
                 what="zeppelin's etcd API")

    def stop_server(self):
        if self.server:
            self.server.send_signal(signal.SIGTERM)
            self.server.wait(timeout=60)
            self.server = None
            self.log.close()

    def zeppelin(self, *args):
        return subprocess.run([BIN, *args], env=self.env, capture_output=True, text=True, timeout=60)

    def keys(self):
        r = ctl(self.endpoint, "get", "", "--from-key", "-w", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        return sorted(base64.b64decode(kv["key"]).decode() for kv in out.get("kvs", [])), out["header"]["revision"]

    def test_save_and_restore(self):
        self.start_server()
        for key in ("a", "b"):
            self.assertEqual(ctl(self.endpoint, "put", key, "v").returncode, 0)
        online = os.path.join(self.dir, "online.db")
        r = ctl(self.endpoint, "snapshot", "save", online)
        self.assertEqual(r.returncode, 0, r.stderr)

        # The running server holds the store: it takes the snapshot, and refuses a restore.
        busy = os.path.join(self.dir, "busy.db")
        through_server = self.zeppelin("store", "snapshot", "save", busy)
        self.assertEqual(through_server.returncode, 0, through_server.stderr)
        self.assertIn("running server's store at revision 3", through_server.stdout)
        self.assertTrue(os.path.getsize(busy) > 0)
        refused = self.zeppelin("store", "snapshot", "restore", busy)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("is running and holds the store open", refused.stderr)

        self.assertEqual(ctl(self.endpoint, "put", "c", "v").returncode, 0)
        self.stop_server()

        offline = os.path.join(self.dir, "offline.db")
        saved = self.zeppelin("store", "snapshot", "save", offline)
        self.assertEqual(saved.returncode, 0, saved.stderr)
        self.assertIn("at revision 4", saved.stdout)

        restored = self.zeppelin("store", "snapshot", "restore", online)
        self.assertEqual(restored.returncode, 0, restored.stderr)
        self.assertIn("(revision 3)", restored.stdout)
        self.start_server()
        self.assertEqual(self.keys(), (["a", "b"], 3))
        self.stop_server()

        self.assertEqual(self.zeppelin("store", "snapshot", "restore", offline).returncode, 0)
        self.start_server()
        self.assertEqual(self.keys(), (["a", "b", "c"], 4))
        self.stop_server()

        junk = os.path.join(self.dir, "junk.db")
        with open(junk, "w") as f:
            f.write("not a snapshot")
        bad = self.zeppelin("store", "snapshot", "restore", junk)
        self.assertEqual(bad.returncode, 1)
        self.assertIn(junk, bad.stderr)


if __name__ == "__main__":
    unittest.main()
