"""Secret env values locally: read from $ZEPPELIN_HOME/secrets/NAME/KEY when a
replica starts; a missing one fails the replica with the path, not the value."""
import os
import unittest

from harness import ZeppelinTestCase, wait_for


class LocalSecretsTest(ZeppelinTestCase):
    def write_secret(self, name, key, value):
        os.makedirs(os.path.join(self.home, "secrets", name), exist_ok=True)
        with open(os.path.join(self.home, "secrets", name, key), "w") as f:
            f.write(value)

    def test_a_replica_gets_the_secret_file_content(self):
        self.write_secret("db", "password", "pa$$word with spaces")
        out = os.path.join(self.dir, "seen.txt")
        self.write_spec(f"""\
            name: sec
            services:
              s:
                command: 'printf %s "$DB_PASSWORD" > {out}.tmp && mv {out}.tmp {out}; exec sleep 1000'
                env:
                  DB_PASSWORD: {{secret: db, key: password}}
            """)
        self.zeppelin("run", "-d")
        wait_for(lambda: os.path.exists(out), what="the replica to write what it saw")
        with open(out) as f:
            self.assertEqual(f.read(), "pa$$word with spaces")
        stored = self.store_get("/zeppelin/")
        self.assertIn("/zeppelin/systems/sec", stored)
        self.assertNotIn("word with spaces", "".join(stored.values()))

    def test_a_missing_secret_fails_the_replica_and_names_the_file(self):
        self.write_spec("""\
            name: sec
            services:
              s:
                command: ["sleep", "1000"]
                restart: never
                env:
                  TOKEN: {secret: api, key: token}
            """)
        r = self.zeppelin("run", "-d", "--timeout", "20s", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        row = self.replica("s", 0, "sec")
        self.assertEqual(row["state"], "failed")
        self.assertIn(os.path.join(self.home, "secrets", "api", "token"), row["detail"])


if __name__ == "__main__":
    unittest.main()
