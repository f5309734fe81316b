"""`zeppelin store snapshot save|restore`: backup (through the running server,
or offline) and restore of the coordination store, including a snapshot
taken online with etcdctl. Snapshots hold every key: they are written 0600
whatever the umask, and only where the caller may write."""
import base64
import glob
import json
import os
import stat
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import BIN, UnixConnection, wait_for
from test_etcd_api import ctl, free_port


def unwritable_dir(parent):
    """A directory this process cannot create files in: a 0500 one, or (as
    root, whom modes do not stop) /sys, where even root cannot."""
    path = os.path.join(parent, "read-only")
    os.mkdir(path, 0o500)
    if not os.access(path, os.W_OK):
        return path
    return "/sys"


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
        # umask 0: the modes checked below must not come from the caller's umask.
        return subprocess.run([BIN, *args], env=self.env, capture_output=True, text=True, timeout=60,
                              preexec_fn=lambda: os.umask(0))

    def assertPrivate(self, path):
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, path)

    def api(self, method, path, body=None):
        conn = UnixConnection(os.path.join(self.home, "zeppelin.sock"))
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            r = conn.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            conn.close()

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
        self.assertPrivate(busy)
        # Nothing is left behind: neither the server's staged copy nor the CLI's temp file.
        self.assertEqual(glob.glob(os.path.join(self.home, "store", "api-snapshot-*")), [])
        self.assertEqual([f for f in os.listdir(self.dir) if f.startswith(".")], [])
        refused = self.zeppelin("store", "snapshot", "restore", busy)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("is running and holds the store open", refused.stderr)

        self.assertEqual(ctl(self.endpoint, "put", "c", "v").returncode, 0)
        self.stop_server()

        offline = os.path.join(self.dir, "offline.db")
        saved = self.zeppelin("store", "snapshot", "save", offline)
        self.assertEqual(saved.returncode, 0, saved.stderr)
        self.assertIn("at revision 4", saved.stdout)
        self.assertPrivate(offline)

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

        # The snapshot the CLI saved through the server restores too.
        self.assertEqual(self.zeppelin("store", "snapshot", "restore", busy).returncode, 0)
        self.start_server()
        self.assertEqual(self.keys(), (["a", "b"], 3))
        self.stop_server()

        junk = os.path.join(self.dir, "junk.db")
        with open(junk, "w") as f:
            f.write("not a snapshot")
        bad = self.zeppelin("store", "snapshot", "restore", junk)
        self.assertEqual(bad.returncode, 1)
        self.assertIn(junk, bad.stderr)

    def test_snapshot_route_streams_the_file_and_takes_no_path(self):
        self.start_server()
        self.assertEqual(ctl(self.endpoint, "put", "k", "v").returncode, 0)
        status, headers, body = self.api("POST", "/v1/store/snapshot")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["content-type"], "application/octet-stream")
        self.assertEqual(headers["x-zeppelin-revision"], "2")
        self.assertTrue(body.startswith(b"SQLite format 3\0"), body[:32])
        self.assertEqual(int(headers["content-length"]), len(body))
        self.assertEqual(glob.glob(os.path.join(self.home, "store", "api-snapshot-*")), [])
        # The server no longer writes where a caller says.
        target = os.path.join(self.dir, "server-written.db")
        status, _, body = self.api("POST", "/v1/store/snapshot", {"path": target})
        self.assertEqual(status, 400)
        self.assertIn("no longer accepted", json.loads(body)["error"]["message"])
        self.assertFalse(os.path.exists(target))

    def test_unwritable_path_is_refused(self):
        blocked = os.path.join(unwritable_dir(self.dir), "snap.db")
        for online in (True, False):
            if online:
                self.start_server()
            r = self.zeppelin("store", "snapshot", "save", blocked)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn(f"cannot write {blocked}", r.stderr)
            self.assertFalse(os.path.exists(blocked))
            if online:
                self.stop_server()
        missing = os.path.join(self.dir, "no-such-dir", "snap.db")
        r = self.zeppelin("store", "snapshot", "save", missing)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"cannot write {missing}", r.stderr)


if __name__ == "__main__":
    unittest.main()
