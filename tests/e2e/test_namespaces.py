"""`zeppelin ns create|ls|rm` against the embedded store (`zeppelin server
--etcd-listen`) and against a real etcd 3.4: the same commands, the same
outcome. With auth enabled, the namespace's user may write under /ns/NAME/
only."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import BIN, wait_for
from test_etcd_api import ETCD, ctl, error_line, free_port


class NamespaceScenario:
    """The scenario, run against the server at self.endpoint (set by the subclass)."""

    endpoint = None

    def ns(self, *args, env=None):
        return subprocess.run([BIN, "ns", *args], env=dict(os.environ, **(env or {})), capture_output=True,
                              text=True, timeout=60)

    def test_create_list_remove_with_auth(self):
        url = f"http://{self.endpoint}"
        created = self.ns("create", "shop", "--password-env", "SHOP_PW", "--endpoints", url, env={"SHOP_PW": "shoppw"})
        self.assertEqual(created.returncode, 0, created.stderr)
        self.assertIn("namespace shop created: prefix /ns/shop/", created.stdout)
        again = self.ns("create", "shop", "--endpoints", url)
        self.assertEqual((again.returncode, again.stderr), (1, "zeppelin: namespace shop already exists\n"))
        bad = self.ns("create", "Bad_Name", "--endpoints", url)
        self.assertEqual(bad.returncode, 2)
        self.assertIn('invalid namespace name "Bad_Name"', bad.stderr)
        no_pw = self.ns("create", "other", "--password-env", "UNSET_VARIABLE_X", "--endpoints", url)
        self.assertEqual(no_pw.returncode, 2)
        self.assertIn("UNSET_VARIABLE_X", no_pw.stderr)
        # The endpoints may come from the environment too.
        listed = self.ns("ls", "-o", "json", env={"ZEPPELIN_ETCD_ENDPOINTS": url})
        self.assertEqual(listed.returncode, 0, listed.stderr)
        [entry] = json.loads(listed.stdout)
        self.assertEqual((entry["name"], entry["prefix"], entry["user"]), ("shop", "/ns/shop/", "shop"))
        role = ctl(self.endpoint, "role", "get", "shop-read")
        self.assertIn("[/ns/shop/, /ns/shop0) (prefix /ns/shop/)", role.stdout)

        for args in (["user", "add", "root:rootpw"], ["user", "grant-role", "root", "root"], ["auth", "enable"]):
            r = ctl(self.endpoint, *args)
            self.assertEqual(r.returncode, 0, r.stderr)
        try:
            shop = "--user=shop:shoppw"
            self.assertEqual(ctl(self.endpoint, shop, "put", "/ns/shop/k", "v").returncode, 0)
            got = ctl(self.endpoint, shop, "get", "/ns/shop/", "--prefix", "--print-value-only")
            self.assertEqual(got.stdout, "v\n")
            for args in (["put", "/ns/other/k", "v"], ["get", "/zeppelin/namespaces/shop"],
                         ["get", "/ns/", "--prefix"]):
                denied = ctl(self.endpoint, shop, *args)
                self.assertEqual(error_line(denied.stderr), "Error: etcdserver: permission denied", args)
            anonymous = self.ns("rm", "shop", "--endpoints", url)
            self.assertEqual(anonymous.returncode, 1)
            self.assertIn("etcdserver: user name is empty", anonymous.stderr)
            as_shop = self.ns("ls", "--endpoints", url, "--user", "shop", env={"ZEPPELIN_ETCD_PASSWORD": "shoppw"})
            self.assertIn("etcdserver: permission denied", as_shop.stderr)
            root = ["--endpoints", url, "--user", "root"]
            root_env = {"ZEPPELIN_ETCD_PASSWORD": "rootpw"}
            kept = self.ns("rm", "shop", *root, env=root_env)
            self.assertEqual(kept.returncode, 1)
            self.assertIn("still holds 1 key(s) under /ns/shop/; pass --force", kept.stderr)
            removed = self.ns("rm", "shop", "--force", *root, env=root_env)
            self.assertEqual(removed.returncode, 0, removed.stderr)
            self.assertEqual(json.loads(self.ns("ls", "-o", "json", *root, env=root_env).stdout), [])
            gone = self.ns("rm", "shop", *root, env=root_env)
            self.assertEqual((gone.returncode, gone.stderr), (1, "zeppelin: namespace shop not found\n"))
            # (the root role was granted without being created, so no role is left at all)
            self.assertEqual(ctl(self.endpoint, "--user=root:rootpw", "role", "list").stdout, "")
            self.assertEqual(ctl(self.endpoint, "--user=root:rootpw", "user", "list").stdout, "root\n")
            self.assertEqual(ctl(self.endpoint, "--user=root:rootpw", "get", "/ns/shop/k").stdout, "")
        finally:
            ctl(self.endpoint, "--user=root:rootpw", "auth", "disable")


class Server:
    def __init__(self, argv, log_path, env=None):
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class EmbeddedStoreNamespaceTest(NamespaceScenario, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="zeppelin-ns-")
        cls.endpoint = f"127.0.0.1:{free_port()}"
        home = os.path.join(cls.dir, "home")
        # Auth off at first, as on a fresh etcd: the scenario enables it itself.
        cls.server = Server([BIN, "server", "--home", home, "--etcd-listen", cls.endpoint, "--insecure-store"],
                            os.path.join(cls.dir, "zeppelin.log"), env=dict(os.environ, ZEPPELIN_HOME=home))
        wait_for(lambda: ctl(cls.endpoint, "endpoint", "status").returncode == 0, timeout=30,
                 what=f"zeppelin's etcd API on {cls.endpoint}")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_z_auth_survives_a_restart_outside_the_key_space(self):
        ctl(self.endpoint, "user", "add", "root:rootpw")  # the scenario may have made it already
        for args in (["user", "grant-role", "root", "root"], ["auth", "enable"]):
            r = ctl(self.endpoint, *args)
            self.assertEqual(r.returncode, 0, r.stderr)
        try:
            self.server.stop()
            home = os.path.join(self.dir, "home")
            # Restarted as by default: the owner's root user and its password are kept.
            type(self).server = Server([BIN, "server", "--home", home, "--etcd-listen", self.endpoint],
                                       os.path.join(self.dir, "zeppelin-restarted.log"),
                                       env=dict(os.environ, ZEPPELIN_HOME=home))
            wait_for(lambda: ctl(self.endpoint, "endpoint", "status").returncode == 0, timeout=30,
                     what="the restarted etcd API")
            anonymous = ctl(self.endpoint, "get", "x")
            self.assertEqual(error_line(anonymous.stderr), "Error: etcdserver: user name is empty")
            everything = ctl(self.endpoint, "--user=root:rootpw", "get", "", "--from-key", "--keys-only")
            self.assertEqual(everything.returncode, 0, everything.stderr)
            self.assertNotIn("root", everything.stdout)
            with open(os.path.join(home, "store", "auth.json")) as f:
                self.assertNotIn("rootpw", f.read())
        finally:
            ctl(self.endpoint, "--user=root:rootpw", "auth", "disable")


class RealEtcdNamespaceTest(NamespaceScenario, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="zeppelin-ns-etcd-")
        client, peer = free_port(), free_port()
        cls.endpoint = f"127.0.0.1:{client}"
        cls.server = Server(
            [ETCD, "--name", "ns", "--data-dir", os.path.join(cls.dir, "etcd-data"),
             "--listen-client-urls", f"http://{cls.endpoint}", "--advertise-client-urls", f"http://{cls.endpoint}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls",
             f"http://127.0.0.1:{peer}", "--initial-cluster", f"ns=http://127.0.0.1:{peer}"],
            os.path.join(cls.dir, "etcd.log"))
        wait_for(lambda: ctl(cls.endpoint, "endpoint", "status").returncode == 0, timeout=30,
                 what=f"etcd on {cls.endpoint}")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
