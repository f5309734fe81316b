"""Bearer tokens on the API's TCP port: every request needs a valid token
(401 without one, or with an unknown, expired or revoked one), whose role must
reach the route's (403 otherwise); repeated failures from one address are
answered 429 for a minute. Tokens are made, listed and revoked with
`zeppelin token`, and the CLI talks to the remote server with ZEPPELIN_SERVER,
ZEPPELIN_TOKEN and ZEPPELIN_CACERT."""
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import textwrap
import unittest

from harness import BIN, free_port, wait_for

def read(path):
    with open(path) as f:
        return f.read()


SPEC = """\
name: {name}
services:
  a:
    command: ["sh", "-c", "env; exec sleep 1000"]
"""


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="zeppelin-auth-")
        cls.home = os.path.join(cls.dir, "home")
        cls.port = free_port()
        cls.log_path = os.path.join(cls.dir, "server.log")
        cls.log = open(cls.log_path, "w")
        cls.env = dict(os.environ, ZEPPELIN_HOME=cls.home)
        for name in ("ZEPPELIN_SERVER", "ZEPPELIN_TOKEN", "ZEPPELIN_CACERT"):
            cls.env.pop(name, None)
        # As a cluster starts it: the first admin token's secret from a Secret, in a variable.
        cls.bootstrap = secrets.token_hex(32)
        cls.server = subprocess.Popen([BIN, "server", "--home", cls.home, "--listen", f"127.0.0.1:{cls.port}",
                                       "--etcd-listen", "127.0.0.1:0", "--bootstrap-token-env", "TEST_BOOTSTRAP"],
                                      env=dict(cls.env, TEST_BOOTSTRAP=cls.bootstrap), stdout=cls.log,
                                      stderr=subprocess.STDOUT)

        def listening():
            if cls.server.poll() is not None:
                raise AssertionError(f"the server exited {cls.server.returncode}: {read(cls.log_path)}")
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=1).close()
                return os.path.exists(os.path.join(cls.home, "zeppelin.sock"))
            except OSError:
                return False

        wait_for(listening, timeout=30, what="the API's TCP port")
        cls.ca = os.path.join(cls.home, "tls", "ca.pem")
        cls.context = ssl.create_default_context(cafile=cls.ca)
        # Over the unix socket (its owner is admin) the first tokens are made.
        cls.tokens = {role: cls.local("token", "create", role, "--role", role).stdout.strip()
                      for role in ("viewer", "operator", "admin")}
        spec = os.path.join(cls.dir, "demo.yaml")
        with open(spec, "w") as f:
            f.write(SPEC.format(name="demo"))
        cls.local("run", "-d", spec)

    @classmethod
    def tearDownClass(cls):
        cls.server.send_signal(signal.SIGTERM)
        try:
            cls.server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            cls.server.kill()
            cls.server.wait()
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def local(cls, *args, check=True):
        r = subprocess.run([BIN, *args], env=cls.env, cwd=cls.dir, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"zeppelin {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def call(self, method, path, token=None, body=None, source="127.0.0.1", authorization=None):
        """(status, parsed body) of one HTTPS request from the address `source`."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=self.context,
                                           source_address=(source, 0))
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if authorization is not None:
            headers["Authorization"] = authorization
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw)
            except ValueError:
                return r.status, raw
        finally:
            conn.close()

    def remote_env(self, token):
        return dict(os.environ, ZEPPELIN_HOME=os.path.join(self.dir, "cli-home"),
                    ZEPPELIN_SERVER=f"https://127.0.0.1:{self.port}", ZEPPELIN_CACERT=self.ca, ZEPPELIN_TOKEN=token)

    def remote(self, token, *args):
        return subprocess.run([BIN, *args], env=self.remote_env(token), cwd=self.dir, capture_output=True, text=True,
                              timeout=120)

    def assertRefused(self, answer, status, code, *words):
        got, body = answer
        self.assertEqual(got, status, body)
        self.assertEqual(body["error"]["code"], code, body)
        for w in words:
            self.assertIn(w, body["error"]["message"])

    def test_missing_or_wrong_token_is_401(self):
        self.assertRefused(self.call("GET", "/v1/version"), 401, "unauthenticated", "viewer", "Bearer")
        self.assertRefused(self.call("GET", "/v1/systems", token="zpt_not-a-token"), 401, "unauthenticated",
                           "unknown, expired or revoked")
        self.assertRefused(self.call("GET", "/v1/systems", authorization=f"Basic {self.tokens['admin']}"), 401,
                           "unauthenticated")
        self.assertRefused(self.call("POST", "/v1/shutdown", body={}), 401, "unauthenticated", "admin")
        self.assertIsNone(self.server.poll(), "the server is still running")

    def test_expired_token_is_401(self):
        token = self.local("token", "create", "short", "--role", "viewer", "--ttl", "1s").stdout.strip()
        # Valid at first (unless this machine is very slow), then refused for good.
        first, _ = self.call("GET", "/v1/version", token=token)
        self.assertIn(first, (200, 401))
        wait_for(lambda: self.call("GET", "/v1/version", token=token)[0] == 401, timeout=10, interval=0.2,
                 what="the token to expire")
        self.assertRefused(self.call("GET", "/v1/systems", token=token), 401, "unauthenticated")
        self.assertIn('token "short" expired', read(self.log_path))

    def test_revoked_token_is_401(self):
        token = self.local("token", "create", "gone", "--role", "admin").stdout.strip()
        self.assertEqual(self.call("GET", "/v1/systems", token=token)[0], 200)
        self.assertEqual(self.local("token", "revoke", "gone").stdout.strip(), "revoked gone")
        self.assertRefused(self.call("GET", "/v1/systems", token=token), 401, "unauthenticated")
        r = self.local("token", "revoke", "gone", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('no token named "gone"', r.stderr)

    def test_each_role_gets_what_the_table_says(self):
        spec_text = SPEC.format(name="demo")
        apply = {"spec_file": os.path.join(self.dir, "demo.yaml"), "spec_text": spec_text}
        cases = [
            ("GET", "/v1/systems", None, {"viewer": 200, "operator": 200, "admin": 200}),
            ("GET", "/v1/replicas?system=demo", None, {"viewer": 200, "operator": 200, "admin": 200}),
            ("POST", "/v1/systems/demo/scale", {"service": "a", "replicas": 1},
             {"viewer": 403, "operator": 200, "admin": 200}),
            ("POST", "/v1/systems", apply, {"viewer": 403, "operator": 403, "admin": 200}),
            ("GET", "/v1/tokens", None, {"viewer": 403, "operator": 403, "admin": 200}),
            ("POST", "/v1/store/snapshot", {}, {"viewer": 403, "operator": 403}),
        ]
        for method, path, body, expected in cases:
            for role, status in expected.items():
                with self.subTest(method=method, path=path, role=role):
                    got, answer = self.call(method, path, token=self.tokens[role], body=body)
                    self.assertEqual(got, status, answer)
                    if status == 403:
                        needed = "operator" if "/scale" in path else "admin"
                        self.assertRefused((got, answer), 403, "forbidden", f"needs the {needed} role",
                                           f"has the {role} role")
        # Token management is admin's alone.
        for role in ("viewer", "operator"):
            self.assertRefused(self.call("POST", "/v1/tokens", token=self.tokens[role],
                                         body={"name": f"by-{role}", "role": "admin"}), 403, "forbidden", "admin")
        got, made = self.call("POST", "/v1/tokens", token=self.tokens["admin"], body={"name": "by-admin", "role": "viewer"})
        self.assertEqual(got, 201, made)
        self.assertEqual(self.call("GET", "/v1/version", token=made["token"])[0], 200)
        # Stopping is an operator's.
        self.assertRefused(self.call("POST", "/v1/systems/demo/stop", token=self.tokens["viewer"]), 403, "forbidden")
        self.assertEqual(self.call("POST", "/v1/systems/demo/stop", token=self.tokens["operator"])[0], 200)
        self.assertEqual(self.call("POST", "/v1/systems/demo/start", token=self.tokens["operator"])[0], 202)

    def test_token_list_shows_no_secrets(self):
        listed = json.loads(self.local("token", "ls", "-o", "json").stdout)
        by_name = {t["name"]: t for t in listed}
        for role in ("viewer", "operator", "admin"):
            self.assertEqual(by_name[role]["role"], role)
            self.assertEqual(set(by_name[role]), {"name", "role", "created", "expires"})
            self.assertIsNone(by_name[role]["expires"])
        table = self.local("token", "ls").stdout
        self.assertTrue(table.startswith("NAME"), table)
        for secret in self.tokens.values():
            self.assertNotIn(secret, table)
            self.assertNotIn(secret, json.dumps(listed))
        # A name taken is refused, and a bad role is a usage error.
        r = self.local("token", "create", "viewer", "--role", "viewer", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("exists", r.stderr)
        r = self.local("token", "create", "x", "--role", "root", check=False)
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_bootstrap_token_from_the_environment_is_admin(self):
        got, made = self.call("POST", "/v1/tokens", token=self.bootstrap, body={"name": "from-bootstrap", "role": "viewer"})
        self.assertEqual(got, 201, made)
        listed = {t["name"]: t for t in json.loads(self.local("token", "ls", "-o", "json").stdout)}
        self.assertEqual(listed["bootstrap"]["role"], "admin")
        self.assertNotIn(self.bootstrap, read(self.log_path))
        # Replicas never see it: the server dropped the variable from its environment.
        self.assertNotIn(self.bootstrap, self.local("logs", "demo").stdout)

    def test_a_short_bootstrap_token_stops_the_server_with_a_reason(self):
        home = os.path.join(self.dir, "short-home")
        r = subprocess.run([BIN, "server", "--home", home, "--listen", f"127.0.0.1:{free_port()}", "--etcd-listen",
                            "127.0.0.1:0", "--bootstrap-token-env", "TEST_BOOTSTRAP"],
                           env=dict(self.env, ZEPPELIN_HOME=home, TEST_BOOTSTRAP="guessable"), capture_output=True,
                           text=True, timeout=60)
        said = r.stdout + r.stderr  # the server's log
        self.assertEqual(r.returncode, 1, said)
        self.assertIn("--bootstrap-token-env", said)
        self.assertIn("at least 32", said)
        self.assertNotIn("guessable", said)
        r = subprocess.run([BIN, "server", "--home", home, "--bootstrap-token-env", "TEST_BOOTSTRAP"],
                           env=dict(self.env, ZEPPELIN_HOME=home, TEST_BOOTSTRAP=self.bootstrap), capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("give --listen", r.stderr)

    def test_repeated_failures_are_429_for_that_address(self):
        source = "127.0.0.2"
        for _ in range(10):
            self.assertEqual(self.call("GET", "/v1/version", token="zpt_wrong", source=source)[0], 401)
        # Refused now, even with a good token; other addresses are not.
        self.assertRefused(self.call("GET", "/v1/version", token=self.tokens["admin"], source=source), 429,
                           "too_many_requests", "try again")
        self.assertEqual(self.call("GET", "/v1/version", token=self.tokens["viewer"])[0], 200)
        self.assertIn("failed authentications within a minute from 127.0.0.2", read(self.log_path))

    def test_cli_against_the_remote_server(self):
        spec = os.path.join(self.dir, "remote.yaml")
        with open(spec, "w") as f:
            f.write(SPEC.format(name="remote"))
        r = self.remote(self.tokens["viewer"], "ps", "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsInstance(json.loads(r.stdout), list)
        r = self.remote(self.tokens["viewer"], "run", "-d", spec)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("needs the admin role", r.stderr)
        self.assertNotIn(self.tokens["viewer"], r.stderr + r.stdout)
        r = self.remote(self.tokens["admin"], "run", "-d", spec)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("system remote is running", r.stdout)
        rows = json.loads(self.remote(self.tokens["viewer"], "ps", "-o", "json", "remote").stdout)
        self.assertEqual([row["state"] for row in rows], ["running"])
        # The caller's token stays with the caller: not in the replica's environment.
        logs = self.remote(self.tokens["viewer"], "logs", "remote").stdout
        self.assertIn("ZEPPELIN_SYSTEM=remote", logs)
        self.assertNotIn("ZEPPELIN_TOKEN", logs)
        self.assertNotIn(self.tokens["admin"], logs)
        # A bad token fails with exit code 1 and does not show.
        r = self.remote("zpt_wrong-token", "ps")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertNotIn("zpt_wrong-token", r.stderr)
        # Tokens over the remote connection, as admin.
        r = self.remote(self.tokens["admin"], "token", "ls")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("admin", r.stdout)
        self.assertEqual(self.remote(self.tokens["admin"], "stop", "remote").returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "cli-home", "zeppelin.sock")),
                         "no local server was started")
        log = read(self.log_path)
        for secret in self.tokens.values():
            self.assertNotIn(secret, log)


if __name__ == "__main__":
    unittest.main()
