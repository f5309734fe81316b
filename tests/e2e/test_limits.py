"""A system too large for the server is refused at once with a clear error,
and the server goes on answering. The spec here wants 1,000,000 replicas
(100 services of 10,000): `zeppelin validate` and `zeppelin run` refuse it
with its place in the file, and so does the API (400, its JSON error), then
GET /v1/version still answers. A spec over --max-spec-bytes is answered 413."""
import json
import os
import time

from harness import UnixConnection, ZeppelinTestCase, api_get


def million_replicas():
    lines = ["name: huge", "services:"]
    for i in range(100):
        lines += [f"  s{i}:", '    command: ["sleep", "1000"]', "    replicas: 10000"]
    return "\n".join(lines) + "\n"


class LimitsTest(ZeppelinTestCase):
    def post(self, path, body):
        conn = UnixConnection(os.path.join(self.home, "zeppelin.sock"))
        try:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, json.loads(r.read())
        finally:
            conn.close()

    def test_a_million_replicas_are_refused_quickly(self):
        path = self.write_spec(million_replicas())
        r = self.zeppelin("validate", path, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("zeppelin.yaml:8:15: the system wants 1000000 replicas in total, over the limit of 10000 "
                      "per system (zeppelin server --max-replicas-per-system)", r.stderr)

        started = time.monotonic()
        r = self.zeppelin("run", "-d", path, check=False, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("over the limit of 10000 per system", r.stderr)
        status, body = self.post("/v1/systems", {"spec_file": path, "spec_text": million_replicas()})
        self.assertLess(time.monotonic() - started, 20)
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["code"], "invalid_argument")
        self.assertIn("--max-replicas-per-system", body["error"]["message"])
        self.assertEqual(api_get(self.home, "/v1/version")["name"], "zeppelin")
        self.assertEqual(api_get(self.home, "/v1/systems"), [])

    def test_a_spec_over_the_size_limit_is_413(self):
        spec = 'name: big\nservices:\n  web:\n    command: ["sleep", "1000"]\n# ' + "x" * (5 << 20) + "\n"
        r = self.zeppelin("validate", self.write_spec(spec), check=False)
        self.assertIn("over the limit of 4194304 (zeppelin server --max-spec-bytes)", r.stderr)
        self.zeppelin("server", "-d")  # with the default limits
        status, body = self.post("/v1/systems", {"spec_file": "/tmp/big.yaml", "spec_text": spec})
        self.assertEqual(status, 413)
        self.assertEqual(body["error"]["code"], "too_large")
        self.assertIn("--max-spec-bytes", body["error"]["message"])
        self.assertEqual(api_get(self.home, "/v1/version")["name"], "zeppelin")
