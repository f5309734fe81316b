"""Secret env values locally: read from $ZEPPELIN_HOME/secrets/NAME/KEY when a
replica starts; a missing one fails the replica with the path, not the value.
`zeppelin secret set|ls|rm` manages the files. The data directory is owner-only
whatever the umask, a restarted server tightens what it finds looser, and names
that could leave their directory are rejected where the spec says them."""
import json
import os
import re
import stat
import unittest

from harness import ZeppelinTestCase, wait_for


def umask_022():
    os.umask(0o022)


def walk_home(home):
    """(path, mode) of everything under `home`, itself included, without following
    links; a replica's volume directory (volumes/S/S/O/V) is listed, not entered."""
    found = [(home, os.lstat(home).st_mode)]
    for root, dirs, files in os.walk(home):
        rel = os.path.relpath(root, home).split(os.sep)
        if rel[0] == "volumes" and len(rel) == 5:
            dirs[:] = []
            continue
        for name in dirs + files:
            path = os.path.join(root, name)
            found.append((path, os.lstat(path).st_mode))
    return found


def in_volume(home, path):
    rel = os.path.relpath(path, home).split(os.sep)
    return rel[0] == "volumes" and len(rel) >= 5


def run_secret_reader(test):
    """Runs a system whose replica gets db/password in $DB_PASSWORD; returns what it saw."""
    out = os.path.join(test.dir, "seen.txt")
    test.write_spec(f"""\
        name: sec
        services:
          s:
            command: 'printf %s "$DB_PASSWORD" > {out}.tmp && mv {out}.tmp {out}; exec sleep 1000'
            env:
              DB_PASSWORD: {{secret: db, key: password}}
        """)
    test.zeppelin("run", "-d")
    wait_for(lambda: os.path.exists(out), what="the replica to write what it saw")
    with open(out) as f:
        return f.read()


class LocalSecretsTest(ZeppelinTestCase):
    def write_secret(self, name, key, value):
        os.makedirs(os.path.join(self.home, "secrets", name), exist_ok=True)
        with open(os.path.join(self.home, "secrets", name, key), "w") as f:
            f.write(value)

    def test_a_replica_gets_the_secret_file_content(self):
        self.write_secret("db", "password", "pa$$word with spaces")
        self.assertEqual(run_secret_reader(self), "pa$$word with spaces")
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


class SecretCommandTest(ZeppelinTestCase):
    VALUE = "v4lue-that-must-stay-hidden"

    def test_set_ls_rm_round_trip_keeps_values_out_of_output_and_argv(self):
        r = self.zeppelin("secret", "set", "db", "password", input=self.VALUE + "\n", preexec_fn=umask_022)
        self.assertNotIn(self.VALUE, r.stdout + r.stderr)
        path = os.path.join(self.home, "secrets", "db", "password")
        with open(path) as f:
            self.assertEqual(f.read(), self.VALUE)  # echo's newline dropped
        self.zeppelin("secret", "set", "db", "user", input="admin")
        self.zeppelin("secret", "set", "api", "tls.crt", "--raw", input="line\n")
        with open(os.path.join(self.home, "secrets", "api", "tls.crt")) as f:
            self.assertEqual(f.read(), "line\n")
        for p in (os.path.join(self.home, "secrets"), os.path.join(self.home, "secrets", "db")):
            self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o700, p)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(sorted(os.listdir(os.path.join(self.home, "secrets", "db"))), ["password", "user"])

        table = self.zeppelin("secret", "ls").stdout
        self.assertRegex(table, r"(?m)^api\s+tls\.crt$")
        self.assertRegex(table, r"(?m)^db\s+password,user$")
        listed = json.loads(self.zeppelin("secret", "ls", "-o", "json").stdout)
        self.assertEqual(listed, [{"name": "api", "keys": ["tls.crt"]}, {"name": "db", "keys": ["password", "user"]}])
        for value in (self.VALUE, "admin"):
            self.assertNotIn(value, table + json.dumps(listed))

        # A replica gets it; no process on the machine has it in its arguments.
        self.assertEqual(run_secret_reader(self), self.VALUE)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    self.assertNotIn(self.VALUE.encode(), f.read(), f"pid {pid}")
            except OSError:
                pass

        self.zeppelin("secret", "rm", "db", "password")
        self.assertEqual(os.listdir(os.path.join(self.home, "secrets", "db")), ["user"])
        self.zeppelin("secret", "rm", "db")
        self.zeppelin("secret", "rm", "api", "tls.crt")  # the last key: the secret goes too
        self.assertEqual(os.listdir(os.path.join(self.home, "secrets")), [])
        self.assertEqual(json.loads(self.zeppelin("secret", "ls", "-o", "json").stdout), [])

        r = self.zeppelin("secret", "rm", "db", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('no secret "db"', r.stderr)
        self.assertIn("zeppelin secret ls", r.stderr)

    def test_bad_names_and_values_are_usage_errors_that_create_nothing(self):
        outside = os.path.join(self.dir, "x")
        for args in (["../x", "k"], ["db", "../../x"], ["db", ".hidden"], ["Db", "k"], ["db", "a/b"], ["", "k"]):
            r = self.zeppelin("secret", "set", *args, input="value", check=False)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertRegex(r.stderr, r"invalid secret (name|key)", args)
        r = self.zeppelin("secret", "rm", "..", check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertFalse(os.path.exists(outside))
        self.assertFalse(os.path.exists(os.path.join(self.home, "secrets")))
        r = self.zeppelin("secret", "set", "db", "password", input="", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no value on stdin", r.stderr)
        self.assertIn("| zeppelin secret set db password", r.stderr)
        r = self.zeppelin("secret", "set", "db", "password", input="a\0b", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("NUL", r.stderr)
        r = self.zeppelin("secret", "set", "db", check=False)
        self.assertEqual(r.returncode, 2)
        r = self.zeppelin("secret", "ls", "-o", "xml", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(self.zeppelin("secret", "ls", "-o", "yaml").stdout, "---\n[]\n")


class PathNamesTest(ZeppelinTestCase):
    def test_names_that_are_paths_fail_validate_and_run_with_their_location(self):
        path = self.write_spec("""\
            name: sec
            services:
              s:
                command: ["sleep", "1000"]
                env:
                  A: {secret: ../x, key: k}
                  B: {secret: db, key: ../../etc/passwd}
                  C: {secret: db, key: .env}
                volumes:
                  - {name: ../../etc, path: /data}
            """)
        for args in (["validate", path], ["run", "-d", "-f", path]):
            r = self.zeppelin(*args, check=False)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f'{path}:6:19: invalid secret name "../x"', r.stderr)
            self.assertIn(f'{path}:7:28: invalid secret key "../../etc/passwd"', r.stderr)
            self.assertIn(f'{path}:8:28: invalid secret key ".env"', r.stderr)
            self.assertIn(f'{path}:10:16: invalid volume name "../../etc"', r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.home, "volumes")))


class HomeModesTest(ZeppelinTestCase):
    """Everything zeppelin creates in its home is owner-only, with the CLI (and so
    the server it starts) under umask 022."""

    def start_system(self):
        self.zeppelin("secret", "set", "db", "password", input="pw", preexec_fn=umask_022)
        # Over 10 MiB of output: the log is rotated once.
        self.write_spec("""\
            name: modes
            services:
              s:
                command: 'touch "$ZEPPELIN_VOLUME_DATA/inside" && echo hello && yes 0123456789abcdef | head -c 11000000 && echo && echo written > "$ZEPPELIN_VOLUME_DATA/done"; exec sleep 1000'
                env:
                  PW: {secret: db, key: password}
                volumes:
                  - {name: data, path: /data}
            """)
        self.zeppelin("run", "-d", preexec_fn=umask_022)
        wait_for(lambda: os.path.exists(os.path.join(self.volume("modes", "s", 0), "done")), timeout=60,
                 what="the replica to write its output")
        log = os.path.join(self.home, "logs", "modes", "s", "0.log")
        wait_for(lambda: os.path.exists(log + ".1"), what="the log to rotate")

    def expected_paths(self):
        h = self.home
        return [os.path.join(h, p) for p in (
            "zeppelin.sock", "server.lock", "server.log", "etcd.address", "store", "store/store.db",
            "store/store.db-wal", "store/store.db-shm", "store/store.lock", "logs", "logs/modes", "logs/modes/s",
            "logs/modes/s/0.log", "logs/modes/s/0.log.1", "secrets", "secrets/db", "secrets/db/password",
            "volumes", "volumes/modes", "volumes/modes/s", "volumes/modes/s/0", "volumes/modes/s/0/data")]

    def test_everything_created_is_owner_only_under_umask_022(self):
        self.start_system()
        found = dict(walk_home(self.home))
        for p in self.expected_paths():
            self.assertIn(p, found)
        loose = {p: oct(stat.S_IMODE(m)) for p, m in found.items() if stat.S_IMODE(m) & 0o077}
        self.assertEqual(loose, {})
        for p, m in found.items():
            if stat.S_ISDIR(m):
                self.assertEqual(stat.S_IMODE(m), 0o700, p)
            elif stat.S_ISREG(m):
                self.assertEqual(stat.S_IMODE(m), 0o600, p)
        # What the replica made in its volume is its own business (its umask).
        inside = os.path.join(self.volume("modes", "s", 0), "inside")
        self.assertEqual(stat.S_IMODE(os.stat(inside).st_mode), 0o644)

    def test_a_restarted_server_tightens_loosened_modes_and_logs_each_path(self):
        self.start_system()
        self.zeppelin("shutdown")
        volume = self.volume("modes", "s", 0)
        before = {}
        for p, m in walk_home(self.home):
            if stat.S_ISLNK(m) or stat.S_ISSOCK(m):
                continue
            os.chmod(p, 0o755 if stat.S_ISDIR(m) else 0o644)
            before[p] = m
        os.chmod(os.path.join(volume, "inside"), 0o666)
        # Not ours to follow: a link in the home to a directory elsewhere.
        elsewhere = os.path.join(self.dir, "elsewhere")
        os.mkdir(elsewhere, 0o755)
        os.chmod(elsewhere, 0o755)
        os.symlink(elsewhere, os.path.join(self.home, "link"))

        self.zeppelin("server", "-d")  # starts the server again
        wait_for(lambda: self.replica("s", 0, "modes") and self.replica("s", 0, "modes")["state"] == "running",
                 what="the replica to run again")
        for p, m in walk_home(self.home):
            if stat.S_ISLNK(m) or p == volume:
                continue
            self.assertEqual(stat.S_IMODE(m) & 0o077, 0, p)
        # The volume directory and what it holds keep the modes given to them.
        self.assertEqual(stat.S_IMODE(os.stat(volume).st_mode), 0o755)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(volume, "inside")).st_mode), 0o666)
        self.assertEqual(stat.S_IMODE(os.stat(elsewhere).st_mode), 0o755)
        with open(os.path.join(self.home, "server.log")) as f:
            log = f.read()
        for rel in ("store/store.db", "secrets/db/password", "logs/modes/s/0.log.1", "volumes/modes/s/0"):
            self.assertRegex(log, re.escape(f"tightened the mode of {os.path.join(self.home, rel)} from 0") + r"\d+ to 0[67]00")
        self.assertIn(f"tightened the mode of {self.home} from 0755 to 0700", log)
        self.assertNotIn(f"tightened the mode of {volume} ", log)


if __name__ == "__main__":
    unittest.main()
