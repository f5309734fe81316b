"""`zeppelin render --target kubernetes` through the real binary: YAML and JSON
carry the same objects, -n, determinism, and the errors (exit 2, nothing on
stdout). No Kubernetes API server runs here: the manifests are checked for
structure, not applied."""
import json
import os
import unittest

from harness import BIN, ZeppelinTestCase

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    yaml = None

SPEC = """\
name: shop
services:
  db:
    image: postgres:16.4
    ports: [{name: pg, port: 5432}]
    replicas: 3
    mode: stateful
    volumes: [{name: data, path: /var/lib/postgresql/data, size: 5Gi}]
    env:
      POSTGRES_PASSWORD: {secret: db, key: password}
      N: 3
    health: {exec: [pg_isready], start_period: 10s}
  web:
    image: registry.example/shop/web:1.0
    command: ["--db", "${ZEPPELIN_SERVICE_DB}"]
    ports: [{name: http, port: 8000}]
    replicas: 2
    depends_on: [db]
    health: {http: {port: http, path: /healthz}}
"""


class RenderTest(ZeppelinTestCase):
    def render(self, *args, check=True):
        return self.zeppelin("render", "--target", "kubernetes", *args, check=check)

    def test_yaml_and_json_hold_the_same_objects(self):
        path = self.write_spec(SPEC)
        as_yaml = self.render(path)
        as_json = self.render(path, "-o", "json")
        self.assertEqual(as_yaml.stderr, "")
        listing = json.loads(as_json.stdout)
        self.assertEqual(listing["apiVersion"], "v1")
        self.assertEqual(listing["kind"], "List")
        kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in listing["items"])
        self.assertEqual(kinds, sorted([
            "Service/shop-zeppelin-etcd", "StatefulSet/shop-zeppelin-etcd",
            "ConfigMap/shop-db-env", "Service/shop-db", "Service/shop-db-headless", "StatefulSet/shop-db",
            "Service/shop-web", "Deployment/shop-web"]))
        for item in listing["items"]:
            self.assertNotIn("namespace", item["metadata"])
            self.assertEqual(item["metadata"]["labels"]["app.kubernetes.io/managed-by"], "zeppelin")
        self.assertTrue(as_yaml.stdout.startswith("---\napiVersion: v1\nkind: Service\n"))
        if yaml is None:
            self.skipTest("PyYAML is not installed: YAML not parsed")
        documents = list(yaml.safe_load_all(as_yaml.stdout))
        self.assertEqual(documents, listing["items"])  # also proves "3" stays a string in YAML
        db = next(o for o in documents if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "shop-db")
        self.assertEqual(db["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"], "5Gi")
        self.assertEqual(db["spec"]["podManagementPolicy"], "OrderedReady")

    def test_namespace_and_a_spec_directory(self):
        self.write_spec(SPEC)
        r = self.render(".", "-n", "prod", "-o", "json")
        items = json.loads(r.stdout)["items"]
        self.assertTrue(items)
        self.assertEqual({o["metadata"].get("namespace") for o in items}, {"prod"})

    def test_output_is_byte_identical_across_runs(self):
        path = self.write_spec(SPEC)
        first = self.render(path, "-n", "x").stdout
        for _ in range(3):
            self.assertEqual(self.render(path, "-n", "x").stdout, first)

    def test_a_secret_value_never_reaches_the_output(self):
        os.makedirs(os.path.join(self.home, "secrets", "db"))
        with open(os.path.join(self.home, "secrets", "db", "password"), "w") as f:
            f.write("hunter2-sentinel")
        path = self.write_spec(SPEC)
        for fmt in ("yaml", "json"):
            out = self.render(path, "-o", fmt).stdout
            self.assertNotIn("hunter2-sentinel", out)
            self.assertIn("secretKeyRef", out)

    def test_a_command_only_service_is_an_error_naming_it(self):
        path = self.write_spec("""\
            name: shop
            services:
              db: {image: "postgres:16.4"}
              web:
                command: ["python3", "web.py"]
            """)
        r = self.render(path, check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn(f'{path}:4:3: service "web" has no image', r.stderr)
        self.assertNotIn('"db"', r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.home, "zeppelin.sock")), "render needs no server")

    def test_usage_errors_print_nothing_on_stdout(self):
        path = self.write_spec(SPEC)
        cases = {
            "unknown target": ["render", "--target", "nomad", path],
            "no target": ["render", path],
            "bad output": ["render", "--target", "kubernetes", path, "-o", "toml"],
            "bad namespace": ["render", "--target", "kubernetes", path, "-n", "Prod_1"],
            "invalid spec": ["render", "--target", "kubernetes", os.path.join(os.path.dirname(__file__), "..",
                                                                              "spec_corpus", "bad_volume_size.yaml")],
        }
        for what, args in cases.items():
            with self.subTest(what):
                r = self.zeppelin(*args, check=False)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertNotEqual(r.stderr, "")
        r = self.render(os.path.join(self.dir, "missing.yaml"), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")

    def test_warnings_go_to_stderr(self):
        path = self.write_spec("""\
            name: shop
            services:
              ledger: {image: "x:1", mode: stateful, restart: never}
            """)
        r = self.render(path)
        self.assertIn('warning: service "ledger": restart: never cannot be honoured by a StatefulSet', r.stderr)
        self.assertNotIn("warning", r.stdout)

    def test_self_renders_the_server_for_one_namespace(self):
        r = self.render("--self", "-n", "ops", "--image", "registry.local/zeppelin:0.1.0", "-o", "json")
        objects = json.loads(r.stdout)["items"]
        kinds = [o["kind"] for o in objects]
        self.assertEqual(kinds, ["ServiceAccount", "Role", "RoleBinding", "Service", "NetworkPolicy", "StatefulSet"])
        self.assertTrue(all(o["metadata"]["namespace"] == "ops" for o in objects))
        pod = objects[-1]["spec"]["template"]["spec"]
        self.assertEqual(pod["containers"][0]["image"], "registry.local/zeppelin:0.1.0")
        self.assertEqual(pod["containers"][0]["args"][0], "server")
        # The same objects in YAML, and the default image is this version's.
        version = self.zeppelin("--version").stdout.split()[-1]
        self.assertIn(f"image: zeppelin:{version}\n", self.render("--self", "-n", "ops").stdout)

    def test_self_usage_errors(self):
        path = self.write_spec(SPEC)
        cases = {
            "no namespace": ["--self"],
            "a spec file too": ["--self", "-n", "ops", path],
            "bad image": ["--self", "-n", "ops", "--image", "Not An Image"],
            "bad storage": ["--self", "-n", "ops", "--storage", "plenty"],
            "neither file nor self": [],
        }
        for what, args in cases.items():
            with self.subTest(what):
                r = self.render(*args, check=False)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertIn("zeppelin:", r.stderr)


if __name__ == "__main__":
    unittest.main()
