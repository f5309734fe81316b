"""Web pages are not clients of zeppelin's ports. What a browser can be made to
send -- a cross-origin "simple" POST (text/plain, no preflight), a request
under a foreign Host (DNS rebinding), a CORS preflight -- is refused on the
API's TCP port (`zeppelin server --listen`) and on the etcd port's JSON
gateway, and no answer grants cross-origin reads (Access-Control-Allow-*).
The same requests with a proper Host and JSON still work. The API's TCP port
is HTTPS (the server's generated CA is trusted here) and needs a bearer token
(an admin's here), checked after the browser guards."""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import unittest

from harness import BIN, free_port, wait_for

EVIL = "http://evil.example"


def request(port, method, path, headers, body=b"", version="HTTP/1.1", tls=None):
    """One raw request (headers exactly as given, Host included), over TLS with
    the ssl.SSLContext `tls` if given; returns (status, {lowercase header:
    value}, parsed JSON body or raw bytes)."""
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} {version}"] + [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as plain:
        s = tls.wrap_socket(plain, server_hostname="127.0.0.1") if tls else plain
        try:
            s.sendall(raw)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        finally:
            s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    got = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        got[name.strip().lower()] = value.strip()
    try:
        payload = json.loads(payload)
    except ValueError:
        pass
    return int(status_line.split()[1]), got, payload


class BrowserRequestsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="zeppelin-browser-")
        cls.home = os.path.join(cls.dir, "home")
        cls.api_port, cls.etcd_port = free_port(), free_port()
        cls.log = open(os.path.join(cls.dir, "server.log"), "w")
        cls.server = subprocess.Popen(
            [BIN, "server", "--home", cls.home, "--listen", f"127.0.0.1:{cls.api_port}",
             "--etcd-listen", f"127.0.0.1:{cls.etcd_port}", "--allowed-host", "zeppelin.test",
             "--allowed-host", "pinned.test:9999"],
            env=dict(os.environ, ZEPPELIN_HOME=cls.home), stdout=cls.log, stderr=subprocess.STDOUT)

        cls.tls = None

        def serving():
            if cls.server.poll() is not None:
                raise AssertionError(f"the server exited {cls.server.returncode}: "
                                     + open(os.path.join(cls.dir, "server.log")).read())
            try:
                if cls.tls is None:
                    cls.tls = ssl.create_default_context(cafile=os.path.join(cls.home, "tls", "ca.pem"))
                # A TLS handshake and the unix socket (for the token) show the API is up:
                # requests without a token would count as failed authentications.
                with socket.create_connection(("127.0.0.1", cls.api_port), timeout=5) as plain:
                    cls.tls.wrap_socket(plain, server_hostname="127.0.0.1").close()
                return (os.path.exists(os.path.join(cls.home, "zeppelin.sock")) and
                        request(cls.etcd_port, "POST", "/v3/maintenance/status", cls.etcd_host(), "{}")[0] == 200)
            except OSError:
                return False

        wait_for(serving, timeout=30, what="the API and the etcd port")
        cls.token = None
        cls.token = subprocess.run([BIN, "token", "create", "browser", "--role", "admin"],
                                   env=dict(os.environ, ZEPPELIN_HOME=cls.home), capture_output=True, text=True,
                                   timeout=60, check=True).stdout.strip()

    @classmethod
    def tearDownClass(cls):
        cls.server.send_signal(signal.SIGTERM)
        cls.server.wait(timeout=60)
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def api(cls, method, path, headers, body=b"", version="HTTP/1.1"):
        """A request to the API's TCP port (HTTPS), with the admin token once made."""
        if getattr(cls, "token", None):
            headers = dict(headers, Authorization=f"Bearer {cls.token}")
        return request(cls.api_port, method, path, headers, body, version, tls=cls.tls)

    @classmethod
    def api_host(cls, host=None):
        return {"Host": host or f"127.0.0.1:{cls.api_port}"}

    @classmethod
    def etcd_host(cls, host=None):
        return {"Host": host or f"127.0.0.1:{cls.etcd_port}"}

    def assertNoCors(self, headers):
        granted = [h for h in headers if h.startswith("access-control-")]
        self.assertEqual(granted, [], headers)

    def assertApiRefused(self, answer, status, code, words):
        got_status, headers, body = answer
        self.assertEqual(got_status, status, body)
        self.assertNoCors(headers)
        self.assertEqual(body["error"]["code"], code, body)
        self.assertIn(words, body["error"]["message"])

    def assertGatewayRefused(self, answer, status, words):
        got_status, headers, body = answer
        self.assertEqual(got_status, status, body)
        self.assertNoCors(headers)
        self.assertIn(words, body["message"])
        self.assertEqual(headers["content-type"], "application/json")

    def systems(self):
        status, _, body = self.api("GET", "/v1/systems", self.api_host())
        self.assertEqual(status, 200, body)
        return [s["name"] for s in body]

    def etcd_revision(self):
        status, _, body = request(self.etcd_port, "POST", "/v3/maintenance/status", self.etcd_host(), "{}")
        self.assertEqual(status, 200, body)
        return body["header"]["revision"]

    # ---- the API on TCP --------------------------------------------------

    def test_api_refuses_cross_origin_simple_posts(self):
        spec = json.dumps({"spec_file": "/x/zeppelin.yaml",
                           "spec_text": "name: csrf\nservices:\n  a:\n    command: [sleep, '100']\n"})
        # What <form enctype=text/plain> or fetch(..., {mode: "no-cors"}) sends.
        forged = dict(self.api_host(), Origin=EVIL, **{"Content-Type": "text/plain;charset=UTF-8"})
        self.assertApiRefused(self.api("POST", "/v1/systems", forged, spec), 403, "forbidden",
                              "cross-origin request refused")
        # A foreign Origin is refused whatever the body type, and with no body at all.
        json_origin = dict(self.api_host(), Origin=EVIL, **{"Content-Type": "application/json"})
        self.assertApiRefused(self.api("POST", "/v1/systems", json_origin, spec), 403, "forbidden",
                              EVIL)
        self.assertApiRefused(self.api("POST", "/v1/shutdown", dict(self.api_host(), Origin=EVIL)),
                              403, "forbidden", EVIL)
        self.assertApiRefused(self.api("DELETE", "/v1/systems/csrf", dict(self.api_host(), Origin="null")),
                              403, "forbidden", "null")
        # Another port on the same machine is another origin.
        other_port = dict(self.api_host(), Origin="http://127.0.0.1:1", **{"Content-Type": "application/json"})
        self.assertApiRefused(self.api("POST", "/v1/systems", other_port, spec), 403, "forbidden",
                              "http://127.0.0.1:1")
        # Bodies that are not JSON are refused even without Origin.
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            answer = self.api("POST", "/v1/systems", dict(self.api_host(), **{"Content-Type": content_type}),
                             spec)
            self.assertApiRefused(answer, 415, "unsupported_media_type", "application/json")
        self.assertApiRefused(self.api("POST", "/v1/systems", self.api_host(), spec), 415,
                              "unsupported_media_type", "no Content-Type")
        self.assertEqual(self.systems(), [])
        self.assertIsNone(self.server.poll(), "the server is still running")

    def test_api_refuses_foreign_hosts(self):
        for host in ("evil.example", f"evil.example:{self.api_port}", f"127.0.0.1.evil.example:{self.api_port}",
                     "zeppelin.test.evil.example", "pinned.test:80"):
            self.assertApiRefused(self.api("GET", "/v1/systems", self.api_host(host)), 403,
                                  "forbidden", "is not a name this server answers to")
        # A rebound page posting "same-origin" JSON is still under the attacker's name.
        rebound = {"Host": f"evil.example:{self.api_port}", "Origin": f"http://evil.example:{self.api_port}",
                   "Content-Type": "application/json"}
        self.assertApiRefused(self.api("POST", "/v1/shutdown", rebound, "{}"), 403, "forbidden",
                              "--allowed-host")
        # HTTP/1.0 without Host: only on the unix socket.
        self.assertApiRefused(self.api("GET", "/v1/version", {}, version="HTTP/1.0"), 403, "forbidden",
                              "without a Host header")
        self.assertIsNone(self.server.poll(), "the server is still running")

    def test_api_preflight_gets_no_grant(self):
        status, headers, _ = self.api("OPTIONS", "/v1/systems",
                                     dict(self.api_host(), Origin=EVIL, **{"Access-Control-Request-Method": "POST",
                                                                           "Access-Control-Request-Headers": "content-type"}))
        self.assertNotEqual(status // 100, 2)
        self.assertNoCors(headers)

    def test_api_serves_proper_requests(self):
        for host in (f"127.0.0.1:{self.api_port}", f"localhost:{self.api_port}", "localhost",
                     f"zeppelin.test:{self.api_port}", "ZEPPELIN.test", "pinned.test:9999"):
            status, headers, body = self.api("GET", "/v1/version", self.api_host(host))
            self.assertEqual((status, body["name"]), (200, "zeppelin"), host)
            self.assertNoCors(headers)
        # JSON state changes get to their route (here: an unknown system), with or without our own Origin.
        for extra in ({}, {"Origin": f"https://127.0.0.1:{self.api_port}"},
                      {"Content-Type": "application/json; charset=utf-8"}):
            headers = dict(self.api_host(), **{"Content-Type": "application/json"})
            headers.update(extra)
            status, got, body = self.api("POST", "/v1/systems/nosuch/scale", headers,
                                        json.dumps({"service": "a", "replicas": 2}))
            self.assertEqual(status, 404, body)
            self.assertIn('no system named "nosuch"', body["error"]["message"])
            self.assertNoCors(got)
        # No body needs no Content-Type.
        status, _, body = self.api("POST", "/v1/systems/nosuch/start", self.api_host())
        self.assertEqual(status, 404, body)
        # The unix socket (the CLI's) is not a browser's way in: it is unaffected.
        ps = subprocess.run([BIN, "ps", "-o", "json"], env=dict(os.environ, ZEPPELIN_HOME=self.home),
                            capture_output=True, text=True, timeout=60)
        self.assertEqual(ps.returncode, 0, ps.stderr)

    # ---- the etcd port's JSON gateway ------------------------------------

    def test_gateway_refuses_foreign_hosts_before_anything_else(self):
        before = self.etcd_revision()
        put = json.dumps({"key": "YQ==", "value": "Yg=="})
        for path, body in (("/v3/kv/put", put), ("/v3/kv/range", '{"key": "YQ=="}'),
                           ("/v3/maintenance/status", "{}"), ("/v3/nothing/here", "{}")):
            answer = request(self.etcd_port, "POST", path, dict(self.etcd_host(f"evil.example:{self.etcd_port}"),
                                                                  **{"Content-Type": "application/json"}), body)
            self.assertGatewayRefused(answer, 403, "is not a name this server answers to")
        self.assertGatewayRefused(request(self.etcd_port, "POST", "/v3/maintenance/status", {}, "{}",
                                          version="HTTP/1.0"), 403, "without a Host header")
        self.assertEqual(self.etcd_revision(), before, "nothing was written")

    def test_gateway_refuses_cross_origin_simple_posts(self):
        before = self.etcd_revision()
        put = json.dumps({"key": "YQ==", "value": "Yg=="})
        forged = dict(self.etcd_host(), Origin=EVIL, **{"Content-Type": "text/plain;charset=UTF-8"})
        self.assertGatewayRefused(request(self.etcd_port, "POST", "/v3/kv/put", forged, put), 403,
                                  "cross-origin request refused")
        # Even the types command-line clients send are refused with a foreign Origin.
        for content_type in ("application/json", "application/x-www-form-urlencoded"):
            headers = dict(self.etcd_host(), Origin=EVIL, **{"Content-Type": content_type})
            self.assertGatewayRefused(request(self.etcd_port, "POST", "/v3/kv/put", headers, put), 403, EVIL)
        # text/plain and multipart are never what an etcd client sends.
        for content_type in ("text/plain", "multipart/form-data; boundary=x"):
            headers = dict(self.etcd_host(), **{"Content-Type": content_type})
            self.assertGatewayRefused(request(self.etcd_port, "POST", "/v3/kv/put", headers, put), 415,
                                      "application/json")
        # A form post from our own origin (no page of ours exists, but a browser always sends Origin).
        own_form = dict(self.etcd_host(), Origin=f"http://127.0.0.1:{self.etcd_port}",
                        **{"Content-Type": "application/x-www-form-urlencoded"})
        self.assertGatewayRefused(request(self.etcd_port, "POST", "/v3/kv/put", own_form, put), 415,
                                  "application/json")
        self.assertEqual(self.etcd_revision(), before, "nothing was written")

    def test_gateway_preflight_gets_no_grant(self):
        status, headers, _ = request(self.etcd_port, "OPTIONS", "/v3/kv/range",
                                     dict(self.etcd_host(), Origin=EVIL, **{"Access-Control-Request-Method": "POST",
                                                                            "Access-Control-Request-Headers": "content-type"}))
        self.assertNotEqual(status // 100, 2)
        self.assertNoCors(headers)

    def test_gateway_serves_proper_requests(self):
        # etcd clients: JSON, no type at all (Python's http.client), curl -d's form type without Origin.
        cases = [(f"127.0.0.1:{self.etcd_port}", {"Content-Type": "application/json"}),
                 (f"localhost:{self.etcd_port}", {}),
                 (f"127.0.0.1:{self.etcd_port}", {"Content-Type": "application/x-www-form-urlencoded"}),
                 (f"127.0.0.1:{self.etcd_port}", {"Content-Type": "application/json",
                                                  "Origin": f"http://127.0.0.1:{self.etcd_port}"}),
                 (f"zeppelin.test:{self.etcd_port}", {"Content-Type": "application/json"})]
        for host, extra in cases:
            status, headers, body = request(self.etcd_port, "POST", "/v3/maintenance/status",
                                            dict(self.etcd_host(host), **extra), "{}")
            self.assertEqual(status, 200, f"{host} {extra}: {body}")
            self.assertIn("revision", body["header"])
            self.assertNoCors(headers)


if __name__ == "__main__":
    unittest.main()
