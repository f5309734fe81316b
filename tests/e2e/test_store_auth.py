"""The embedded store's etcd API is locked down by default: anonymous clients
are refused as a real etcd with auth enabled refuses them (stricter where etcd
is lax), the owner's commands log in by themselves, a store made without auth
is locked down on upgrade, and another local user can neither drive the
server nor forge desired state."""
import base64
import json
import os
import pwd
import socket
import stat
import subprocess
import unittest
import urllib.error
import urllib.request

from harness import BIN, ETCDCTL, Servers, ZeppelinTestCase, store_root_password, wait_for

OTHER_USER = "zeppelin-e2e-other"


def anonymous_etcdctl(endpoint, *args, user=None, timeout=30):
    r = subprocess.run([ETCDCTL, f"--endpoints={endpoint}", "--command-timeout=5s", *args],
                       env={"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                       capture_output=True, text=True, timeout=timeout, user=user)
    # etcdctl's last line says why; the lines before are timestamped client logs.
    lines = r.stderr.strip().splitlines()
    return r.returncode, lines[-1] if lines else ""


def gateway(endpoint, path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = token
    req = urllib.request.Request(f"http://{endpoint}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def b64(text):
    return base64.b64encode(text.encode()).decode()


def endpoint_of(home):
    with open(os.path.join(home, "etcd.address")) as f:
        return f.read().strip()


class OwnerExperienceTest(ZeppelinTestCase):
    def test_the_owner_needs_no_flag(self):
        self.zeppelin("kv", "put", "config/mode", "fast")
        self.assertEqual(self.zeppelin("kv", "get", "config/mode").stdout, "config/mode\nfast\n")
        # The password the server made: 256 random bits, owner-only.
        creds = os.path.join(self.home, "credentials", "store-root")
        self.assertRegex(store_root_password(self.home), r"^[0-9a-f]{64}$")
        self.assertEqual(stat.S_IMODE(os.stat(creds).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(creds)).st_mode), 0o700)
        self.assertIn(b"fast", subprocess.run([BIN, "lock", "nightly", "--", "sh", "-c", "echo fast"],
                                              env=self.env, capture_output=True, timeout=60).stdout)
        self.zeppelin("ns", "create", "shop")
        self.assertIn("shop", self.zeppelin("ns", "ls").stdout)

        # `zeppelin store env` sets etcdctl up in one step.
        # (`endpoint status` is relayed to gRPC, and etcdctl sends the URL as its authority.)
        r = subprocess.run(["bash", "-c", f'eval "$("{BIN}" store env)" && "{ETCDCTL}" endpoint status >/dev/null && '
                                          f'"{ETCDCTL}" get config/mode --print-value-only'],
                           env=self.env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "fast\n")
        exports = self.zeppelin("store", "env").stdout
        self.assertIn("export ETCDCTL_USER='root:", exports)
        self.assertIn("export ZEPPELIN_ETCD_ENDPOINTS='http://127.0.0.1:", exports)

        # Without credentials, nothing but Status and Authenticate is answered.
        endpoint = endpoint_of(self.home)
        code, err = anonymous_etcdctl(endpoint, "get", "config/mode")
        self.assertNotEqual(code, 0)
        self.assertIn("etcdserver: user name is empty", err)
        code, _ = anonymous_etcdctl(endpoint, "endpoint", "status")
        self.assertEqual(code, 0)

    def test_caller_credentials_are_not_kept_with_a_system(self):
        seen = os.path.join(self.dir, "seen")
        spec = self.write_spec(f"""\
            name: creds
            services:
              app:
                command: 'env > {seen}.tmp; mv {seen}.tmp {seen}; exec sleep 1000'
            """)
        env = dict(self.env, ETCDCTL_USER="root:hunter2", ETCDCTL_PASSWORD="hunter2", ZEPPELIN_TOKEN="tok-123",
                   KEPT="yes")
        r = subprocess.run([BIN, "run", "-d", "-f", spec], env=env, cwd=self.dir, capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_for(lambda: os.path.exists(seen), what="the replica's environment")
        with open(seen) as f:
            replica_env = f.read()
        self.assertIn("KEPT=yes", replica_env)
        self.assertNotIn("hunter2", replica_env)
        self.assertNotIn("tok-123", replica_env)
        record = self.etcdctl("get", "/zeppelin/systems/creds", "--print-value-only").stdout
        self.assertIn('"KEPT"', record)
        self.assertNotIn("hunter2", record)
        self.assertNotIn("tok-123", record)


class AnonymousLikeEtcdTest(unittest.TestCase):
    """The same anonymous requests against a real etcd with auth enabled and
    against zeppelin's default: the same refusals, or stricter ones."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.servers = Servers(tempfile.mkdtemp(prefix="zeppelin-auth-"))
        cls.etcd = cls.servers.etcd("authdiff")
        cls.zeppelin = cls.servers.zeppelin_etcd_api("home")
        cls.servers.wait_serving(cls.etcd, cls.zeppelin)
        for args in (["user", "add", "root:rootpw"], ["auth", "enable"]):
            code, err = anonymous_etcdctl(cls.etcd, *args)
            assert code == 0, err
        cls.zeppelin_home = os.path.join(cls.servers.dir, "home")
        wait_for(lambda: store_root_password(cls.zeppelin_home), what="zeppelin's root credentials")

    @classmethod
    def tearDownClass(cls):
        cls.servers.stop()

    def both(self, *args):
        return anonymous_etcdctl(self.etcd, *args), anonymous_etcdctl(self.zeppelin, *args)

    def test_anonymous_requests_get_etcds_errors(self):
        for args in (["get", "k"], ["put", "k", "v"], ["del", "k"], ["get", "--prefix", "/zeppelin/systems/"],
                     ["put", "/zeppelin/systems/evil", "{}"], ["txn"], ["user", "list"], ["role", "list"],
                     ["user", "add", "mallory:pw"], ["auth", "disable"]):
            (etcd_code, etcd_err), (z_code, z_err) = self.both(*args)
            self.assertNotEqual(etcd_code, 0, args)
            self.assertNotEqual(z_code, 0, (args, z_err))
            self.assertEqual(z_err, etcd_err, args)
        # Deviation: etcd 3.4 lets anyone compact everyone's history; zeppelin only root.
        (etcd_code, _), (z_code, z_err) = self.both("compaction", "1")
        self.assertEqual(etcd_code, 0)
        self.assertNotEqual(z_code, 0)
        self.assertIn("user name is empty", z_err)
        (etcd_code, _), (z_code, _) = self.both("endpoint", "status")
        self.assertEqual((etcd_code, z_code), (0, 0))
        # Deviation: etcd grants leases to anyone; zeppelin only to a user.
        (etcd_code, _), (z_code, z_err) = self.both("lease", "grant", "60")
        self.assertEqual(etcd_code, 0)
        self.assertNotEqual(z_code, 0)
        self.assertIn("user name is empty", z_err)
        # A wrong password is refused alike.
        (etcd_code, etcd_err), (z_code, z_err) = self.both("--user", "root:wrong", "get", "k")
        self.assertNotEqual(z_code, 0)
        self.assertEqual(z_err, etcd_err)

    def test_snapshot_and_watch_need_credentials(self):
        path = os.path.join(self.servers.dir, "stolen.db")
        code, err = anonymous_etcdctl(self.zeppelin, "snapshot", "save", path)
        self.assertNotEqual(code, 0)
        self.assertFalse(os.path.exists(path))
        # A watch is created, then canceled at once, as etcd does.
        (etcd_code, etcd_err), (z_code, z_err) = self.both("watch", "--prefix", "/zeppelin/")
        self.assertNotEqual(z_code, 0)
        self.assertEqual(z_err, etcd_err)
        self.assertIn("canceled", z_err)

    def test_the_json_gateway_refuses_anonymous_calls_as_etcd(self):
        for path, body in (("/v3/kv/range", {"key": b64("k")}), ("/v3/kv/put", {"key": b64("k"), "value": b64("v")}),
                           ("/v3/auth/user/list", {})):
            etcd_status, etcd_body = gateway(self.etcd, path, body)
            z_status, z_body = gateway(self.zeppelin, path, body)
            self.assertEqual(z_status, etcd_status, path)
            self.assertEqual(z_body.get("message"), etcd_body.get("message"), path)
            self.assertGreaterEqual(z_status, 400)
        status, _ = gateway(self.zeppelin, "/v3/maintenance/status", {})
        self.assertEqual(status, 200)
        status, _ = gateway(self.zeppelin, "/v3/lease/grant", {"TTL": 60})
        self.assertGreaterEqual(status, 400)
        # With root's token it is served.
        status, auth = gateway(self.zeppelin, "/v3/auth/authenticate",
                               {"name": "root", "password": store_root_password(self.zeppelin_home)})
        self.assertEqual(status, 200, auth)
        status, _ = gateway(self.zeppelin, "/v3/kv/put", {"key": b64("k"), "value": b64("v")}, auth["token"])
        self.assertEqual(status, 200)


class UpgradeTest(ZeppelinTestCase):
    def start_server(self, *flags, env=None):
        server = subprocess.Popen([BIN, "server", "--home", self.home, *flags], env=env or self.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sock = os.path.join(self.home, "zeppelin.sock")
        wait_for(lambda: os.path.exists(sock) or server.poll() is not None, what="the server")
        return server

    def stop_server(self, server):
        self.zeppelin("shutdown")
        out, _ = server.communicate(timeout=60)
        return out

    def test_a_store_without_auth_is_locked_down_on_start_with_its_data(self):
        server = self.start_server("--insecure-store")
        endpoint = endpoint_of(self.home)
        self.assertEqual(anonymous_etcdctl(endpoint, "put", "kept", "yes")[0], 0)
        out = self.stop_server(server)
        self.assertIn("--insecure-store", out)  # the warning

        server = self.start_server()
        try:
            code, err = anonymous_etcdctl(endpoint_of(self.home), "get", "kept")
            self.assertNotEqual(code, 0)
            self.assertIn("user name is empty", err)
            self.assertEqual(self.zeppelin("kv", "get", "kept").stdout, "kept\nyes\n")
        finally:
            self.stop_server(server)

    def test_an_owners_own_root_user_keeps_its_password(self):
        server = self.start_server("--insecure-store")
        endpoint = endpoint_of(self.home)
        for args in (["user", "add", "root:mine"], ["user", "grant-role", "root", "root"], ["put", "k", "v"]):
            code, err = anonymous_etcdctl(endpoint, *args)
            self.assertEqual(code, 0, err)
        self.assertFalse(os.path.exists(os.path.join(self.home, "credentials", "store-root")))
        self.stop_server(server)

        # Locked down all the same; zeppelin's commands cannot log in until told the password.
        server = self.start_server()
        out = ""
        try:
            self.assertNotEqual(anonymous_etcdctl(endpoint_of(self.home), "get", "k")[0], 0)
            self.assertEqual(anonymous_etcdctl(endpoint_of(self.home), "--user", "root:mine", "get", "k")[0], 0)
            self.assertNotEqual(self.zeppelin("kv", "get", "k", check=False).returncode, 0)
        finally:
            out = self.stop_server(server)
        self.assertIn("--store-password-env", out)

        # A wrong password: the server refuses to start, and says why.
        bad = subprocess.run([BIN, "server", "--home", self.home, "--store-password-env", "PW"],
                             env=dict(self.env, PW="wrong"), capture_output=True, text=True, timeout=60)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("not the password of the store's root user", bad.stdout + bad.stderr)

        server = self.start_server("--store-password-env", "PW", env=dict(self.env, PW="mine"))
        try:
            self.assertEqual(store_root_password(self.home), "mine")
            self.assertEqual(self.zeppelin("kv", "get", "k").stdout, "k\nv\n")
        finally:
            self.stop_server(server)

    def test_a_snapshot_restored_elsewhere_comes_back_locked_with_the_same_root(self):
        server = self.start_server()
        try:
            self.zeppelin("kv", "put", "k", "v")
            password = store_root_password(self.home)
            snapshot = os.path.join(self.dir, "backup.db")
            self.zeppelin("store", "snapshot", "save", snapshot)
        finally:
            self.stop_server(server)

        # Another data directory, as on a new machine: no credentials file.
        self.home = os.path.join(self.dir, "elsewhere")
        self.env = dict(self.env, ZEPPELIN_HOME=self.home)
        restored = self.zeppelin("store", "snapshot", "restore", snapshot)
        self.assertIn("--store-password-env", restored.stdout)
        server = self.start_server()
        out = ""
        try:
            endpoint = endpoint_of(self.home)
            code, err = anonymous_etcdctl(endpoint, "get", "k")
            self.assertNotEqual(code, 0)
            self.assertIn("user name is empty", err)
            code, err = anonymous_etcdctl(endpoint, "--user", f"root:{password}", "get", "k")
            self.assertEqual(code, 0, err)
        finally:
            out = self.stop_server(server)
        self.assertIn("--store-password-env", out)  # the root user is not one this server made
        server = self.start_server("--store-password-env", "PW", env=dict(self.env, PW=password))
        try:
            self.assertEqual(self.zeppelin("kv", "get", "k").stdout, "k\nv\n")
        finally:
            self.stop_server(server)

    def test_the_etcd_port_beyond_loopback_needs_tls_or_etcd_plaintext(self):
        r = subprocess.run([BIN, "server", "--home", self.home, "--etcd-listen", "0.0.0.0:0"],
                           env=self.env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("add --etcd-tls, or --etcd-plaintext", r.stdout + r.stderr)

    def test_insecure_store_is_for_loopback_only(self):
        r = subprocess.run([BIN, "server", "--home", self.home, "--insecure-store", "--etcd-listen", "0.0.0.0:0"],
                           env=self.env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("loopback", r.stdout + r.stderr)


def other_user():
    """A second, unprivileged local account (made once), as (uid, gid)."""
    try:
        entry = pwd.getpwnam(OTHER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER],
                       check=True, capture_output=True)
        entry = pwd.getpwnam(OTHER_USER)
    return entry.pw_uid, entry.pw_gid


@unittest.skipUnless(os.geteuid() == 0, "making a second local user needs root")
class SecondLocalUserTest(ZeppelinTestCase):
    def test_another_user_cannot_drive_the_server_or_read_its_state(self):
        uid, gid = other_user()
        # Only $ZEPPELIN_HOME's own modes stand between the other user and it.
        os.chmod(self.dir, 0o755)
        marker = os.path.join(self.dir, "pwned")
        spec = self.write_spec("""\
            name: web
            services:
              app:
                command: ["sleep", "1000"]
            """)
        self.zeppelin("run", "-d", "-f", spec)
        endpoint = endpoint_of(self.home)

        def as_other(fn):
            pid = os.fork()
            if pid == 0:
                try:
                    os.setgroups([])
                    os.setgid(gid)
                    os.setuid(uid)
                    fn()
                    os._exit(0)
                except AssertionError:
                    os._exit(1)
                except BaseException:
                    os._exit(2)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)

        def cannot_reach_home():
            for path in ("zeppelin.sock", "store/store.db", "credentials/store-root", "server.log"):
                try:
                    open(os.path.join(self.home, path), "rb").close()
                except PermissionError:
                    continue
                raise AssertionError(path + " is readable")
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(os.path.join(self.home, "zeppelin.sock"))
            except PermissionError:
                return
            raise AssertionError("the API socket accepted another user")

        self.assertEqual(as_other(cannot_reach_home), 0)

        record = {"name": "pwned", "spec_file": spec,
                  "spec_text": f"name: pwned\nservices:\n  x:\n    command: ['touch', '{marker}']\n",
                  "caller_env": {}, "images": {}, "running": True}
        for args in (["get", "--prefix", "/zeppelin/systems/"], ["put", "/zeppelin/systems/pwned", json.dumps(record)],
                     ["snapshot", "save", "/tmp/zeppelin-e2e-stolen.db"], ["user", "add", "root2:x"]):
            code, err = anonymous_etcdctl(endpoint, *args, user=uid)
            self.assertNotEqual(code, 0, args)
        self.assertFalse(os.path.exists("/tmp/zeppelin-e2e-stolen.db"))
        self.assertEqual(self.etcdctl("get", "/zeppelin/systems/pwned").stdout, "")
        self.assertFalse(os.path.exists(marker))
        self.assertEqual([s["system"] for s in self.ps()], ["web"])


if __name__ == "__main__":
    unittest.main()
