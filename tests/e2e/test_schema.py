"""docs/spec.schema.json accepts the examples and the complete specs in
docs/spec.md, and rejects malformed specs. Needs PyYAML and jsonschema; the
tests are skipped when either is missing."""
import glob
import json
import os
import re
import textwrap
import unittest

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    yaml = None

try:
    import jsonschema
except ImportError:  # pragma: no cover - depends on the machine
    jsonschema = None

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SCHEMA = os.path.join(ROOT, "docs", "spec.schema.json")
SPEC_DOC = os.path.join(ROOT, "docs", "spec.md")
EXAMPLES = os.path.join(ROOT, "examples")
CORPUS = os.path.join(ROOT, "tests", "spec_corpus")

# Invalid specs of tests/spec_corpus that a schema can recognise. The others
# (dependency cycles, unknown dependencies, duplicate names, health ports naming
# no port, YAML syntax) need the parser: `zeppelin validate`.
CORPUS_REJECTED_BY_SCHEMA = [
    "bad_cpu.yaml",
    "bad_duration.yaml",
    "bad_memory.yaml",
    "bad_restart.yaml",
    "empty_command.yaml",
    "health_two_kinds.yaml",
    "invalid_service_name.yaml",
    "invalid_system_name.yaml",
    "missing_command.yaml",
    "missing_services.yaml",
    "negative_replicas.yaml",
    "not_a_mapping.yaml",
    "port_out_of_range.yaml",
    "relative_volume_path.yaml",
    "start_on_replicated.yaml",
    "unknown_field.yaml",
    "wrong_type_replicas.yaml",
    "bad_volume_size.yaml",
    "volume_size_on_read_only_source.yaml",
    "env_secret_missing_key.yaml",
    "env_secret_bad_name.yaml",
    "env_secret_bad_key.yaml",
    "env_value_list.yaml",
    "store_not_a_mapping.yaml",
    "store_etcd_missing_endpoints.yaml",
    "store_etcd_empty_endpoints.yaml",
    "store_etcd_bad_endpoint.yaml",
    "store_etcd_user_without_password.yaml",
    "store_etcd_password_without_user.yaml",
    "store_etcd_empty_user.yaml",
    "store_etcd_relative_prefix.yaml",
    "store_unknown_backend.yaml",
    "store_user_with_etcd.yaml",
    "store_user_empty.yaml",
    "store_user_not_a_string.yaml",
]

MISSING = [name for name, module in (("PyYAML (import yaml)", yaml), ("jsonschema", jsonschema)) if module is None]


@unittest.skipIf(MISSING, "needs " + " and ".join(MISSING))
class SpecSchemaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(SCHEMA, encoding="utf-8") as f:
            cls.schema = json.load(f)
        validator_class = jsonschema.validators.validator_for(cls.schema)
        validator_class.check_schema(cls.schema)
        cls.validator = validator_class(cls.schema)

    def errors(self, document):
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in self.validator.iter_errors(document)]

    def assert_valid(self, document, what):
        errors = self.errors(document)
        self.assertEqual(errors, [], f"{what} should be valid")

    def assert_invalid(self, text, what):
        document = yaml.safe_load(textwrap.dedent(text))
        self.assertFalse(self.validator.is_valid(document), f"{what} should be rejected:\n{text}")

    def test_schema_is_draft_2020_12(self):
        self.assertEqual(self.schema["$schema"], "https://json-schema.org/draft/2020-12/schema")

    def test_every_example_is_valid(self):
        files = sorted(glob.glob(os.path.join(EXAMPLES, "*", "zeppelin.yaml")))
        self.assertTrue(files, f"no examples found under {EXAMPLES}")
        for path in files:
            with self.subTest(example=os.path.relpath(path, ROOT)):
                with open(path, encoding="utf-8") as f:
                    self.assert_valid(yaml.safe_load(f), path)

    def test_every_golden_rendering_input_is_valid(self):
        files = sorted(f for f in glob.glob(os.path.join(ROOT, "tests", "golden", "kubernetes", "*.yaml"))
                       if not f.endswith(".expected.yaml"))
        self.assertGreaterEqual(len(files), 8)
        for path in files:
            with self.subTest(spec=os.path.basename(path)):
                with open(path, encoding="utf-8") as f:
                    self.assert_valid(yaml.safe_load(f), path)

    def test_complete_specs_in_the_reference_are_valid(self):
        with open(SPEC_DOC, encoding="utf-8") as f:
            blocks = re.findall(r"```yaml\n(.*?)```", f.read(), re.S)
        # Complete specs are the blocks that start a document (the others are fragments).
        complete = [b for b in blocks if re.match(r"(#[^\n]*\n)*name:", b)]
        self.assertTrue(complete, "docs/spec.md has no complete spec")
        for i, block in enumerate(complete):
            with self.subTest(block=i):
                self.assert_valid(yaml.safe_load(block), f"spec block {i} of docs/spec.md")

    def test_every_field_and_form(self):
        self.assert_valid(yaml.safe_load(textwrap.dedent("""\
            name: full-1
            store:
              etcd:
                endpoints: ["https://etcd-0.example:2379", "http://10.0.0.2:2379"]
                user: shop
                password: {secret: etcd-auth, key: password}
                prefix: /apps/shop/
            services:
              db:
                command: ["srv", "--listen", "${ZEPPELIN_HOST}:${PORT}", 8080, true]
                workdir: ./db
                env: {MODE: primary, LEVEL: 3, VERBOSE: true, EMPTY: null, URL: "http://${ZEPPELIN_HOST}:${PORT_HTTP}",
                      PASSWORD: {secret: db-auth, key: password}}
                ports:
                  - {name: http, port: 8080}
                  - {name: admin-ui, port: 9090}
                replicas: 3
                mode: stateful
                start: parallel
                resources: {cpu: 500m, memory: 256Mi}
                volumes:
                  - {name: data, path: /data, size: 10Gi}
                  - {name: config, path: /etc/db, source: ./config, read_only: true}
                health:
                  http: {port: http, path: /healthz}
                  interval: 1m30s
                  timeout: 1.5s
                  retries: 5
                  start_period: 0
                restart: on-failure
                stop_grace: 250ms
              web:
                command: exec python3 web.py --port "$PORT"
                env: ["A=1", "B=x=y", "C"]
                replicas: 0
                resources: {cpu: 0.5, memory: 1G}
                health: {tcp: {port: 8000}, start_period: 10s}
                restart: never
                stop_grace: "0"
                depends_on: [db]
              worker:
                command: [sleep, infinity]
                user: nobody
                resources: {cpu: 2, memory: 1048576}
                health: {exec: "test -e /tmp/ready"}
              probe:
                command: ["true"]
                user: 65534
                group: nogroup
                health: {exec: [pg_isready, -q]}
            """)), "a spec using every field")

    def test_unknown_fields_are_rejected(self):
        self.assert_invalid("""\
            name: shop
            services:
              db: {command: ["true"], replica: 3}
            """, "an unknown service field")
        self.assert_invalid("""\
            name: shop
            version: 1
            services:
              db: {command: ["true"]}
            """, "an unknown top-level field")
        self.assert_invalid("""\
            name: shop
            services:
              db:
                command: ["true"]
                health: {tcp: {port: 80, path: /}}
            """, "a path on a tcp check")
        self.assert_invalid("""\
            name: shop
            services:
              db:
                command: ["true"]
                volumes: [{name: data, path: /data, mode: rw}]
            """, "an unknown volume field")

    def test_bad_durations_are_rejected(self):
        for value in ["10 seconds", "10", "1d", "-1s", "s", "''", "1s2"]:
            with self.subTest(value=value):
                self.assert_invalid(f"""\
                    name: shop
                    services:
                      db: {{command: ["true"], stop_grace: {value}}}
                    """, f"stop_grace {value}")
        for value in ["0", "0s", "0ms"]:
            with self.subTest(value=value):
                self.assert_invalid(f"""\
                    name: shop
                    services:
                      db: {{command: ["true"], health: {{tcp: {{port: 80}}, interval: {value}}}}}
                    """, f"health interval {value}")

    def test_health_needs_exactly_one_kind(self):
        self.assert_invalid("""\
            name: shop
            services:
              db:
                command: ["true"]
                ports: [{name: http, port: 80}]
                health: {tcp: {port: http}, exec: ["true"]}
            """, "two health kinds")
        self.assert_invalid("""\
            name: shop
            services:
              db:
                command: ["true"]
                health: {interval: 1s}
            """, "no health kind")

    def test_bad_names_are_rejected(self):
        for name in ["My_Shop", "-shop", "shop-", "a" * 64, "shop.io", "''"]:
            with self.subTest(system=name):
                self.assert_invalid(f"""\
                    name: {name}
                    services:
                      db: {{command: ["true"]}}
                    """, f"system name {name}")
        self.assert_invalid("""\
            name: shop
            services:
              Web_1: {command: ["true"]}
            """, "service name Web_1")
        self.assert_invalid("""\
            name: shop
            services:
              db: {command: ["true"], ports: [{name: a-very-long-port-name, port: 80}]}
            """, "a port name longer than 15 characters")
        self.assert_invalid("""\
            name: shop
            services:
              db: {command: ["true"], env: {1ST: x}}
            """, "an environment variable name starting with a digit")

    def test_other_malformed_values_are_rejected(self):
        cases = {
            "start without mode: stateful": "start: parallel",
            "start with mode: replicated": "{mode: replicated, start: ordered}",
            "an unknown mode": "mode: sharded",
            "an unknown restart policy": "restart: sometimes",
            "replicas above 10000": "replicas: 10001",
            "quoted replicas": "replicas: '3'",
            "a port out of range": "ports: [{name: http, port: 70000}]",
            "a port without a number": "ports: [{name: http}]",
            "a relative volume path": "volumes: [{name: data, path: data}]",
            "memory with a bad suffix": "resources: {memory: 256MB}",
            "zero memory": "resources: {memory: 0}",
            "cpu in words": "resources: {cpu: half}",
            "an http check path without /": "health: {http: {port: 80, path: healthz}}",
            "zero retries": "health: {tcp: {port: 80}, retries: 0}",
            "an empty exec check": "health: {exec: []}",
            "a dependency listed twice": "depends_on: [a, a]",
            "a group without a user": "group: staff",
            "an empty user": "user: ''",
        }
        for what, field in cases.items():
            with self.subTest(what=what):
                text = "name: shop\nservices:\n  db:\n    command: [\"true\"]\n"
                if field.startswith("{"):  # several fields
                    text = "name: shop\nservices:\n  db: " + field[:-1] + ", command: [\"true\"]}\n"
                else:
                    text += "    " + field + "\n"
                self.assert_invalid(text, what)

    def test_user_is_for_process_services(self):
        self.assert_invalid("name: shop\nservices:\n  db: {image: postgres, user: app}\n", "user on an image service")
        self.assert_invalid("name: shop\nservices:\n  db: {build: ., user: app}\n", "user on a built image")

    def test_invalid_specs_of_the_parser_corpus_are_rejected(self):
        for name in CORPUS_REJECTED_BY_SCHEMA:
            path = os.path.join(CORPUS, name)
            if not os.path.exists(path):
                continue
            with self.subTest(corpus=name):
                with open(path, encoding="utf-8") as f:
                    self.assert_invalid(f.read(), name)


if __name__ == "__main__":
    unittest.main()
