"""A process service with `user:` runs as that account: it cannot read the
server's data directory (the store's root password included), its own volume
is its own, and it reaches the store only through its token, within the
replicas' rights. Without root, naming another account is a located error."""
import json
import os
import pwd
import stat
import subprocess
import unittest

from harness import BIN, ETCDCTL, ZeppelinTestCase, wait_for
from test_store_auth import OTHER_USER, other_user


@unittest.skipUnless(os.geteuid() == 0, "running a replica as another user needs root")
class ReplicaUserTest(ZeppelinTestCase):
    def test_a_replica_runs_as_its_user_and_reaches_the_store_only_with_its_token(self):
        uid, gid = other_user()
        # The spec's directory is the replica's workdir: the account must be able to enter it.
        os.chmod(self.dir, 0o755)
        out = os.path.join(self.dir, "out")
        os.mkdir(out)
        os.chown(out, uid, gid)
        etcdctl = f"{ETCDCTL} --endpoints=$ZEPPELIN_ETCD_ENDPOINTS --command-timeout=5s"
        script = (f"id -u > {out}/uid; id -g > {out}/gid; echo \"$HOME\" > {out}/home; "
                  f"cat $ZEPPELIN_HOME/credentials/store-root > /dev/null 2>&1; echo $? > {out}/creds; "
                  f"ls $ZEPPELIN_HOME > /dev/null 2>&1; echo $? > {out}/list; "
                  f"{etcdctl} put /as-user/k hello > {out}/put 2>&1; echo $? >> {out}/put; "
                  f"{etcdctl} put /zeppelin/systems/evil x > {out}/evil 2>&1; echo $? >> {out}/evil; "
                  f"touch {out}/done; exec sleep 1000")
        spec = self.write_spec(f"""\
            name: asuser
            services:
              app:
                user: {OTHER_USER}
                restart: never
                volumes: [{{name: data, path: /data}}]
                command: {json.dumps(script)}
            """)
        self.zeppelin("run", "-d", "-f", spec)
        wait_for(lambda: os.path.exists(os.path.join(out, "done")), timeout=60, what="the replica's report")

        def read(name):
            with open(os.path.join(out, name)) as f:
                return f.read()

        self.assertEqual(read("uid"), f"{uid}\n")
        self.assertEqual(read("gid"), f"{gid}\n")
        self.assertEqual(read("home"), pwd.getpwnam(OTHER_USER).pw_dir + "\n")
        self.assertEqual(read("creds"), "1\n")  # the store's root password is not its to read
        self.assertNotEqual(read("list"), "0\n")  # nor may it list $ZEPPELIN_HOME
        # With its token: keys outside /zeppelin/ yes, desired state no.
        self.assertEqual(read("put"), "OK\n0\n")
        self.assertIn("permission denied", read("evil"))
        self.assertTrue(read("evil").endswith("1\n"), read("evil"))
        self.assertEqual(self.etcdctl("get", "--print-value-only", "/as-user/k").stdout, "hello\n")
        self.assertEqual(self.etcdctl("get", "/zeppelin/systems/evil").stdout, "")

        # Its own volume directory is its own; nothing above it changed hands or modes.
        volume = self.volume("asuser", "app", 0)
        self.assertEqual((os.stat(volume).st_uid, os.stat(volume).st_gid), (uid, gid))
        for path in (self.home, os.path.join(self.home, "volumes"), os.path.dirname(volume)):
            st = os.stat(path)
            self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o700), path)

        row = self.replica("app", 0, "asuser")
        self.assertEqual(row["state"], "running")

    def test_another_user_needs_a_root_server(self):
        uid, gid = other_user()
        os.chmod(self.dir, 0o755)
        spec = self.write_spec("""\
            name: asroot
            services:
              app:
                command: ["true"]
                user: root
            """)
        os.chmod(spec, 0o644)
        # `zeppelin validate` checks as whoever runs it, as the local server it would start.
        r = subprocess.run([BIN, "validate", spec], capture_output=True, text=True, timeout=60, user=uid, group=gid,
                           extra_groups=[], env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/"})
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(f"{spec}:5:11: user \"root\" (uid 0): running replicas as another user needs a server running "
                      f"as root; this one runs as uid {uid}", r.stderr)


if __name__ == "__main__":
    unittest.main()
