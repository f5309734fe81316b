"""The API's TCP port (`zeppelin server --listen`) is HTTPS only: a private CA
and a server certificate generated under $ZEPPELIN_HOME/tls, or the files of
--tls-cert/--tls-key, re-read when they are replaced. Plain HTTP gets no API
answer. The CLI reaches it with ZEPPELIN_SERVER and ZEPPELIN_CACERT, and never
starts a local server then. (Tokens and roles: test_api_auth.py.)"""
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import unittest

from harness import BIN, free_port, wait_for


def read(path):
    with open(path) as f:
        return f.read()


def served_certificate(port, context, host="127.0.0.1"):
    """The DER certificate the server presents after a verified handshake."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        with context.wrap_socket(plain, server_hostname=host) as s:
            return s.getpeercert(binary_form=True)


def https_get(port, context, path, headers=None):
    """(status, JSON body) of a GET over TLS."""
    import http.client
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def make_certificate(directory, name, common_name="127.0.0.1"):
    """A self-signed certificate for 127.0.0.1 made with the openssl CLI; returns (cert, key) paths."""
    cert, key = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={common_name}",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


class TlsServer:
    def __init__(self, directory, name, extra=()):
        self.home = os.path.join(directory, name)
        self.port = free_port()
        self.log_path = os.path.join(directory, f"{name}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([BIN, "server", "--home", self.home, "--listen", f"127.0.0.1:{self.port}",
                                      "--etcd-listen", "127.0.0.1:0", *extra],
                                     env=dict(os.environ, ZEPPELIN_HOME=self.home), stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def wait_listening(self):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited {self.proc.returncode}: {read(self.log_path)}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(up, timeout=30, what="the API's TCP port")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class GeneratedCertificateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="zeppelin-tls-")
        cls.server = TlsServer(cls.dir, "home", ["--tls-san", "zeppelin.test"])
        cls.server.wait_listening()
        cls.ca = os.path.join(cls.server.home, "tls", "ca.pem")
        cls.context = ssl.create_default_context(cafile=cls.ca)
        wait_for(lambda: os.path.exists(os.path.join(cls.server.home, "zeppelin.sock")), what="the unix socket")
        cls.token = subprocess.run([BIN, "token", "create", "test", "--role", "viewer"],
                                   env=dict(os.environ, ZEPPELIN_HOME=cls.server.home), capture_output=True,
                                   text=True, timeout=60, check=True).stdout.strip()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_chain_and_names_verify_against_the_generated_ca(self):
        # The default context checks the chain and the name (an IP SAN here).
        for host in ("127.0.0.1", "localhost", "zeppelin.test"):
            self.assertTrue(served_certificate(self.server.port, self.context, host), host)
        with self.assertRaises(ssl.SSLCertVerificationError):
            served_certificate(self.server.port, self.context, "other.example")
        # Not trusted by a client that does not know the CA.
        with self.assertRaises(ssl.SSLCertVerificationError):
            served_certificate(self.server.port, ssl.create_default_context())
        status, body = https_get(self.server.port, self.context, "/v1/version",
                                 {"Authorization": f"Bearer {self.token}"})
        self.assertEqual(status, 200, body)

    def test_tls_san_names_are_answered_to(self):
        # The name the certificate was made for passes the Host check too.
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as plain:
            with self.context.wrap_socket(plain, server_hostname="zeppelin.test") as s:
                s.sendall(f"GET /v1/version HTTP/1.1\r\nHost: zeppelin.test:{self.server.port}\r\n"
                          f"Authorization: Bearer {self.token}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data)

    def test_old_protocols_are_refused(self):
        context = ssl.create_default_context(cafile=self.ca)
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        with self.assertRaises((ssl.SSLError, OSError)):
            served_certificate(self.server.port, context)

    def test_files_are_private(self):
        tls = os.path.join(self.server.home, "tls")
        self.assertEqual(stat.S_IMODE(os.stat(tls).st_mode), 0o700)
        # Owner-only like the rest of the data directory: ca.pem is copied to clients by its owner.
        for name in ("ca.pem", "ca-key.pem", "server.pem", "server-key.pem"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(tls, name)).st_mode), 0o600, name)

    def test_plain_http_gets_no_api_answer(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as s:
            s.sendall(b"GET /v1/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except ConnectionResetError:
                pass
        self.assertNotIn(b"zeppelin", data)
        self.assertFalse(data.startswith(b"HTTP/1.1 200"), data)
        self.assertIsNone(self.server.proc.poll(), "the server is still running")

    def test_cli_reaches_the_remote_server_and_starts_none(self):
        elsewhere = os.path.join(self.dir, "cli-home")
        env = dict(os.environ, ZEPPELIN_HOME=elsewhere, ZEPPELIN_SERVER=f"https://127.0.0.1:{self.server.port}",
                   ZEPPELIN_CACERT=self.ca, ZEPPELIN_TOKEN=self.token)
        r = subprocess.run([BIN, "ps", "-o", "json"], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), [])
        # Without the CA the server is not trusted, and nothing is started locally instead.
        env.pop("ZEPPELIN_CACERT")
        r = subprocess.run([BIN, "ps"], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("certificate", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(elsewhere, "zeppelin.sock")))


class RenewalTest(unittest.TestCase):
    """The generated server certificate is issued again on start when it
    expires within 30 days or names other hosts; the CA is kept."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zeppelin-tls-renew-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, *extra):
        server = TlsServer(self.dir, "home", list(extra))
        try:
            server.wait_listening()
            context = ssl.create_default_context(cafile=os.path.join(server.home, "tls", "ca.pem"))
            return served_certificate(server.port, context)
        finally:
            server.stop()

    def test_expiring_or_renamed_certificates_are_issued_again(self):
        tls = os.path.join(self.dir, "home", "tls")
        first = self.start("--tls-san", "one.test")
        ca = read(os.path.join(tls, "ca.pem"))
        self.assertEqual(self.start("--tls-san", "one.test"), first, "a valid certificate is kept")
        renamed = self.start("--tls-san", "two.test")
        self.assertNotEqual(renamed, first)
        # One that expires in 2 days, signed by the same CA (as an old one would be).
        csr, key = os.path.join(self.dir, "s.csr"), os.path.join(self.dir, "s.key")
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", csr, "-subj", "/CN=old"], check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(tls, "ca.pem"),
                        "-CAkey", os.path.join(tls, "ca-key.pem"), "-CAcreateserial", "-days", "2",
                        "-out", os.path.join(tls, "server.pem")], check=True, capture_output=True)
        shutil.copy(key, os.path.join(tls, "server-key.pem"))
        expiring = ssl.PEM_cert_to_DER_cert(read(os.path.join(tls, "server.pem")))
        renewed = self.start("--tls-san", "two.test")
        self.assertNotEqual(renewed, expiring)
        self.assertEqual(read(os.path.join(tls, "ca.pem")), ca, "the CA is kept")


class GivenCertificateTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zeppelin-tls-given-")
        self.cert, self.key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        first_cert, first_key = make_certificate(self.dir, "first")
        shutil.copy(first_cert, self.cert)
        shutil.copy(first_key, self.key)
        self.server = TlsServer(self.dir, "home", ["--tls-cert", self.cert, "--tls-key", self.key])
        self.server.wait_listening()

    def tearDown(self):
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_given_certificate_is_served_and_replaced_files_are_picked_up(self):
        first = ssl.create_default_context(cafile=self.cert)
        served = served_certificate(self.server.port, first)
        self.assertEqual(served, ssl.PEM_cert_to_DER_cert(read(self.cert)))
        self.assertFalse(os.path.exists(os.path.join(self.server.home, "tls", "ca.pem")), "nothing generated")

        second_cert, second_key = make_certificate(self.dir, "second")
        # Rotated as tools do: the new files renamed over the old ones.
        os.replace(second_key, self.key)
        os.replace(second_cert, self.cert)
        second = ssl.create_default_context(cafile=self.cert)
        wanted = ssl.PEM_cert_to_DER_cert(read(self.cert))
        wait_for(lambda: served_certificate(self.server.port, second) == wanted, timeout=10,
                 what="the new certificate")
        with self.assertRaises(ssl.SSLCertVerificationError):
            served_certificate(self.server.port, first)

    def test_bad_files_are_refused_at_start(self):
        bad = TlsServer(self.dir, "bad", ["--tls-cert", self.key, "--tls-key", self.key])
        try:
            self.assertNotEqual(bad.proc.wait(timeout=30), 0)
        finally:
            bad.log.close()
        self.assertIn("certificate", read(bad.log_path))


if __name__ == "__main__":
    unittest.main()
