"""TLS on the etcd port (`zeppelin server --etcd-tls`, or --etcd-tls-cert and
--etcd-tls-key): etcdctl, the CLI, `store env` and replicas (the Python SDK)
use https and the CA the server names; a client without that CA, and any
plaintext client, gets no etcd answer. With TLS the port may listen beyond
loopback without --etcd-plaintext. Given files are re-read for new
connections when they are replaced."""
import json
import os
import shlex
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import unittest

from harness import BIN, ETCDCTL, ZeppelinTestCase, api_get, free_port, wait_for
from test_api_tls import make_certificate, read
from test_replica_user import acl_entries
from test_store_auth import OTHER_USER, other_user

SDK = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "sdk", "python"))
sys.path.insert(0, SDK)
import zeppelin  # noqa: E402


def exports(text):
    """{NAME: value} of the `export NAME=value` lines of `zeppelin store env`."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        out[name] = shlex.split(value)[0] if value else ""
    return out


def host_port(endpoint):
    host, _, port = endpoint.split("://")[-1].rpartition(":")
    return host, int(port)


def plaintext_answer(endpoint, request):
    """What a plaintext client sending `request` reads back before the server closes."""
    with socket.create_connection(host_port(endpoint), timeout=10) as s:
        s.sendall(request)
        got = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        return got


def served_certificate(endpoint, cafile):
    """The DER certificate the etcd port presents to a verified h2 client."""
    context = ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(host_port(endpoint), timeout=10) as plain:
        with context.wrap_socket(plain, server_hostname="127.0.0.1") as s:
            return s.getpeercert(binary_form=True)


class EtcdTls(ZeppelinTestCase):
    def store_env(self):
        return exports(self.zeppelin("store", "env").stdout)

    def etcdctl_env(self, *args, env, check=True):
        r = subprocess.run([ETCDCTL, "--dial-timeout=3s", "--command-timeout=10s", *args], env=env,
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"etcdctl {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def test_generated_certificate_clients_and_refusals(self):
        self.start_server("--etcd-tls")
        etcd = api_get(self.home, "/v1/etcd")
        endpoint = etcd["endpoints"][0]
        self.assertTrue(endpoint.startswith("https://127.0.0.1:"), endpoint)
        ca = os.path.join(self.home, "tls", "ca.pem")
        self.assertEqual(etcd["cacert"], ca)
        self.assertTrue(os.path.exists(os.path.join(self.home, "tls", "etcd-server.pem")))

        # `zeppelin store env` sets etcdctl up in one step, TLS included.
        env = self.store_env()
        self.assertEqual(env["ZEPPELIN_ETCD_ENDPOINTS"], endpoint)
        self.assertEqual(env["ETCDCTL_CACERT"], ca)
        self.assertEqual(env["ZEPPELIN_ETCD_CACERT"], ca)
        ctl_env = dict(os.environ, **env)
        self.etcdctl_env("put", "/tls/a", "1", env=ctl_env)
        self.assertEqual(self.etcdctl_env("get", "--prefix", "/tls/", env=ctl_env).stdout.split(), ["/tls/a", "1"])
        # A watch from the revision of a put sees it: no race with the stream's start.
        self.etcdctl_env("put", "/tls/w", "seen", env=ctl_env)
        revision = json.loads(self.etcdctl_env("get", "/tls/w", "-w", "json", env=ctl_env).stdout)["header"]["revision"]
        watch = subprocess.Popen([ETCDCTL, "watch", f"--rev={revision}", "/tls/w"], env=ctl_env,
                                 stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual([watch.stdout.readline().strip() for _ in range(3)], ["PUT", "/tls/w", "seen"])
        finally:
            watch.kill()
            watch.wait()
            watch.stdout.close()

        # Without the CA, or with another one, the handshake fails: no answer.
        no_ca = {k: v for k, v in ctl_env.items() if k != "ETCDCTL_CACERT"}
        r = self.etcdctl_env("--endpoints=" + endpoint, "get", "/tls/a", env=no_ca, check=False)
        self.assertNotEqual(r.returncode, 0)
        other, _ = make_certificate(self.dir, "other")
        r = self.etcdctl_env("get", "/tls/a", env=dict(ctl_env, ETCDCTL_CACERT=other), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("/tls/a", r.stdout)

        # Plaintext, HTTP/1.1 or HTTP/2, is closed without an answer.
        host, port = host_port(endpoint)
        self.assertEqual(plaintext_answer(endpoint, f"POST /v3/kv/range HTTP/1.1\r\nHost: {host}:{port}\r\n"
                                          "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".encode()),
                         b"")
        self.assertFalse(plaintext_answer(endpoint, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0" * 9)
                         .startswith(b"\0"))

        # The CLI follows without flags.
        self.zeppelin("kv", "put", "/tls/cli", "yes")
        self.assertIn("yes", self.zeppelin("kv", "get", "/tls/cli").stdout)

        # The JSON gateway over TLS, with the SDK.
        store = zeppelin.Client(endpoint, user="root", password=env["ZEPPELIN_ETCD_PASSWORD"], cacert=ca)
        self.assertEqual(store.get("/tls/cli").value, b"yes")

    def test_process_replica_reads_discovery_over_https(self):
        self.start_server("--etcd-tls")
        app = os.path.join(self.dir, "app.py")
        with open(app, "w") as f:
            f.write(
                "import os, time, zeppelin\n"
                "me = zeppelin.replica()\n"
                "store = zeppelin.Client()\n"
                "for _ in range(300):\n"
                "    peers = store.peers(me.system, me.service)\n"
                "    if peers: break\n"
                "    time.sleep(0.1)\n"
                "print('SDK', os.environ['ZEPPELIN_ETCD_ENDPOINTS'], os.environ['ZEPPELIN_ETCD_CACERT'],\n"
                "      len(peers), flush=True)\n"
                "time.sleep(600)\n")
        self.write_spec(f"""
            name: tlsapp
            services:
              app:
                command: ["python3", "{app}"]
                env: {{PYTHONPATH: "{SDK}"}}
                ports: [{{name: http, port: 7000}}]
            """)
        self.zeppelin("run", "-d")
        wait_for(lambda: "SDK " in self.zeppelin("logs", "tlsapp/app").stdout, timeout=60,
                 what="the replica to read discovery")
        line = next(l for l in self.zeppelin("logs", "tlsapp/app").stdout.splitlines() if "SDK " in l)
        endpoints, cacert, peers = line.split("SDK ", 1)[1].split()
        self.assertTrue(endpoints.startswith("https://"), endpoints)
        # The CA's public copy (readable by replicas of any account), the same certificate.
        self.assertEqual(cacert, os.path.join(self.home, "public", "etcd-ca.pem"))
        self.assertEqual(read(cacert), read(os.path.join(self.home, "tls", "ca.pem")))
        self.assertEqual(stat.S_IMODE(os.stat(cacert).st_mode), 0o644)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(cacert)).st_mode) & 0o077, 0)
        self.assertEqual(peers, "1")

    @unittest.skipUnless(os.geteuid() == 0, "running a replica as another user needs root")
    def test_a_replica_of_another_account_trusts_the_ca_it_is_given(self):
        uid, gid = other_user()
        os.chmod(self.dir, 0o755)  # the replica's workdir
        out = os.path.join(self.dir, "out")
        os.mkdir(out)
        os.chown(out, uid, gid)
        self.start_server("--etcd-tls")
        # etcdctl takes ETCDCTL_CACERT and ETCDCTL_USER from the replica's environment.
        script = (f"{ETCDCTL} --endpoints=$ZEPPELIN_ETCD_ENDPOINTS --command-timeout=5s put /as-user/tls yes "
                  f"> {out}/put 2>&1; echo $? >> {out}/put; "
                  f"ls $ZEPPELIN_HOME/public > /dev/null 2>&1; echo $? > {out}/list; "
                  f"touch {out}/done; exec sleep 1000")
        self.write_spec(f"""\
            name: tlsuser
            services:
              app:
                user: {OTHER_USER}
                restart: never
                command: {json.dumps(script)}
            """)
        self.zeppelin("run", "-d")
        wait_for(lambda: os.path.exists(os.path.join(out, "done")), timeout=60, what="the replica's report")
        self.assertEqual(read(os.path.join(out, "put")), "OK\n0\n")
        self.assertNotEqual(read(os.path.join(out, "list")), "0\n")  # it may pass, not list
        self.assertEqual(self.zeppelin("kv", "get", "/as-user/tls").stdout.split()[-1], "yes")
        # Removing the system takes its account's way through again.
        self.zeppelin("down", "tlsuser")
        self.assertNotIn(f"user:{uid}:--x", acl_entries(os.path.join(self.home, "public")))
        self.assertNotIn(f"user:{uid}:--x", acl_entries(self.home))

    def test_beyond_loopback_needs_tls_or_plaintext(self):
        r = subprocess.run([BIN, "server", "--home", os.path.join(self.dir, "refused"), "--etcd-listen", "0.0.0.0:0"],
                           env=dict(self.env, ZEPPELIN_HOME=os.path.join(self.dir, "refused")), capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--etcd-tls", r.stdout + r.stderr)
        self.start_server("--etcd-listen", "0.0.0.0:0", "--etcd-tls")
        endpoint = api_get(self.home, "/v1/etcd")["endpoints"][0]
        self.assertTrue(endpoint.startswith("https://127.0.0.1:"), endpoint)  # what the certificate names
        self.zeppelin("kv", "put", "/wide", "ok")
        self.assertIn("ok", self.zeppelin("kv", "get", "/wide").stdout)

    def test_given_files_are_rotated_for_new_connections(self):
        certs = os.path.join(self.dir, "certs")
        os.makedirs(certs)
        first_cert, first_key = make_certificate(certs, "first")
        cert, key = os.path.join(certs, "etcd.pem"), os.path.join(certs, "etcd-key.pem")
        ca = os.path.join(certs, "ca.pem")  # the certificates are self-signed: each is its own issuer
        shutil.copy(first_cert, cert)
        shutil.copy(first_key, key)
        with open(ca, "w") as f:
            f.write(read(first_cert))
        self.start_server("--etcd-tls-cert", cert, "--etcd-tls-key", key, "--etcd-tls-ca", ca)
        endpoint = api_get(self.home, "/v1/etcd")["endpoints"][0]
        self.assertTrue(endpoint.startswith("https://"), endpoint)
        self.assertFalse(os.path.exists(os.path.join(self.home, "tls", "etcd-server.pem")))
        env = self.store_env()
        self.assertEqual(env["ETCDCTL_CACERT"], ca)
        self.zeppelin("kv", "put", "/rotated", "before")
        first_der = served_certificate(endpoint, ca)

        second_cert, second_key = make_certificate(certs, "second")
        with open(ca, "a") as f:
            f.write(read(second_cert))  # clients trust both while the pair changes
        os.replace(second_key, key + ".new")
        os.replace(second_cert, cert + ".new")
        os.replace(key + ".new", key)
        os.replace(cert + ".new", cert)
        wait_for(lambda: served_certificate(endpoint, ca) != first_der, timeout=20,
                 what="new connections to get the new certificate")
        with open(ca, "w") as f:
            f.write(read(cert))  # only the new one now
        self.assertIn("before", self.zeppelin("kv", "get", "/rotated").stdout)
        ctl_env = dict(os.environ, **env)
        self.assertEqual(self.etcdctl_env("get", "/rotated", env=ctl_env).stdout.split(), ["/rotated", "before"])


if __name__ == "__main__":
    unittest.main()
