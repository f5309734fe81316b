"""Auth is on by default on the server's own store, and each replica gets
ZEPPELIN_ETCD_USER and a ZEPPELIN_ETCD_TOKEN for it (zeppelin-replica, or
store.user), which `zeppelin kv` and the JSON gateway accept within that
user's rights; the token ends with the replica. With --insecure-store,
replicas get no token."""
import base64
import json
import os
import subprocess
import urllib.error
import urllib.request

from harness import BIN, ZeppelinTestCase, wait_for

def gateway_get(endpoint, key, token):
    """Range of one key on the JSON gateway, as (HTTP status, body)."""
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    req = urllib.request.Request(f"{endpoint}/v3/kv/range", data=body, method="POST",
                                 headers={"Authorization": token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class ReplicaTokenTest(ZeppelinTestCase):
    def run_system(self, name, store, script, check=True):
        """Runs a one-replica system whose replica runs `script` in a shell, then sleeps."""
        spec = self.write_spec(f"""\
            name: {name}
            {store}
            services:
              app:
                restart: never
                command: '{script}; exec sleep 1000'
            """, name=f"{name}.yaml")
        return self.zeppelin("run", "-d", "-f", spec, check=check)

    def read_when_done(self, name):
        path = os.path.join(self.dir, name)
        done = path + ".done"
        wait_for(lambda: os.path.exists(done), timeout=60, what=f"the replica to write {name}")
        with open(path) as f:
            return f.read()

    def test_replicas_act_as_the_replica_user_or_their_store_user_while_they_run(self):
        d = self.dir
        env_dump = 'printf "%s|%s" "${ZEPPELIN_ETCD_USER-unset}" "${ZEPPELIN_ETCD_TOKEN-unset}"'
        # By default: zeppelin-replica, which may use keys outside /zeppelin/ and read discovery.
        self.run_system("tok", "", f"{env_dump} > {d}/tok; {BIN} kv put /tok/k hello > {d}/tok.put 2>&1; "
                                   f"{BIN} kv get /tok/k > {d}/tok.get 2>&1; "
                                   # its own announcement may follow its start by a moment
                                   f"for i in $(seq 100); do {BIN} kv get /zeppelin/services/tok/app/0 "
                                   f">/dev/null 2>&1 && break; sleep 0.1; done; "
                                   f"{BIN} kv ls /zeppelin/services/tok/ > {d}/tok.disc 2>&1; "
                                   f"{BIN} kv put /zeppelin/systems/evil x > {d}/tok.evil 2>&1; echo $? >> {d}/tok.evil; "
                                   f"{BIN} kv get /zeppelin/systems/tok > {d}/tok.spec 2>&1; echo $? >> {d}/tok.spec; "
                                   f"touch {d}/tok.done")
        user, token = self.read_when_done("tok").split("|")
        self.assertEqual(user, "zeppelin-replica")
        self.assertRegex(token, r"^[0-9a-f]{32}$")
        with open(f"{d}/tok.put") as f:
            self.assertEqual(f.read(), "OK\n")
        with open(f"{d}/tok.get") as f:
            self.assertEqual(f.read(), "/tok/k\nhello\n")
        with open(f"{d}/tok.disc") as f:
            self.assertEqual(f.read(), "/zeppelin/services/tok/app/0\n")
        for name in ("evil", "spec"):
            with open(f"{d}/tok.{name}") as f:
                out = f.read()
            self.assertIn("permission denied", out)
            self.assertTrue(out.endswith("1\n"), out)
        self.assertEqual(self.etcdctl("get", "/zeppelin/systems/evil").stdout, "")
        # The same token works on the JSON gateway, within the same rights.
        endpoint = self.etcd_endpoints()
        status, got = gateway_get(endpoint, "/tok/k", token)
        self.assertEqual(status, 200, got)
        self.assertEqual(base64.b64decode(got["kvs"][0]["value"]), b"hello")
        status, got = gateway_get(endpoint, "/zeppelin/systems/tok", token)
        self.assertEqual(status, 403, got)

        # store.user: the replica may use its prefix only.
        for args in (["role", "add", "app"], ["role", "grant-permission", "app", "--prefix", "readwrite", "/app/"],
                     ["user", "add", "app:apppw"], ["user", "grant-role", "app", "app"]):
            self.etcdctl(*args)
        self.run_system("lim", "store: {user: app}",
                        f"{env_dump} > {d}/lim; {BIN} kv put /app/x in > {d}/lim.in 2>&1; "
                        f"{BIN} kv put /tok/k overwritten > {d}/lim.out 2>&1; echo $? >> {d}/lim.out; "
                        f"touch {d}/lim.done")
        user, _ = self.read_when_done("lim").split("|")
        self.assertEqual(user, "app")
        with open(f"{d}/lim.in") as f:
            self.assertEqual(f.read(), "OK\n")
        with open(f"{d}/lim.out") as f:
            out = f.read()
        self.assertIn("permission denied", out)
        self.assertTrue(out.endswith("1\n"), out)
        self.assertEqual(self.etcdctl("get", "/tok/k", "--print-value-only").stdout, "hello\n")
        self.assertEqual(self.etcdctl("get", "/app/x", "--print-value-only").stdout, "in\n")

        # A user that does not exist: the replica is not started, and `run` says why.
        ghost = self.run_system("ghost", "store: {user: nobody}", f"touch {d}/ghost.done", check=False)
        self.assertEqual(ghost.returncode, 1, ghost.stderr)
        self.assertIn('no store token for the replica: etcd user "nobody" (store.user) does not exist', ghost.stderr)
        self.assertEqual(self.replica("app", 0, "ghost")["state"], "failed")
        self.assertFalse(os.path.exists(f"{d}/ghost.done"))

        # Stopped: its token no longer works.
        self.zeppelin("stop", "tok")
        status, got = gateway_get(endpoint, "/tok/k", token)
        self.assertEqual(status, 401, got)
        self.assertIn("invalid auth token", json.dumps(got))

    def test_with_an_insecure_store_replicas_get_no_token(self):
        d = self.dir
        server = subprocess.Popen([BIN, "server", "--home", self.home, "--insecure-store"], env=self.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: os.path.exists(os.path.join(self.home, "zeppelin.sock")), what="the server")
            env_dump = 'printf "%s|%s" "${ZEPPELIN_ETCD_USER-unset}" "${ZEPPELIN_ETCD_TOKEN-unset}"'
            self.run_system("plain", "", f"{env_dump} > {d}/plain; touch {d}/plain.done")
            self.assertEqual(self.read_when_done("plain"), "unset|unset")
        finally:
            self.zeppelin("shutdown")
            server.wait(timeout=60)


if __name__ == "__main__":
    import unittest
    unittest.main()
