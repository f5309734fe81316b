"""A process service with `user:` runs as that account: it cannot read the
server's data directory (the store's root password included), its own volume
is its own and reachable (the directories above it let the account pass, not
list), and it reaches the store only through its token, within the replicas'
rights. Without root, naming another account is a located error."""
import errno
import json
import os
import pwd
import signal
import stat
import struct
import subprocess
import unittest

from harness import BIN, ETCDCTL, ZeppelinTestCase, wait_for
from test_store_auth import OTHER_USER, other_user


def acl_entries(path):
    """The access ACL's entries as "TAG:ID:PERMS" (ID for named ones), [] for plain mode bits."""
    try:
        raw = os.getxattr(path, "system.posix_acl_access")
    except OSError as e:
        if e.errno == errno.ENODATA:
            return []
        raise
    names = {0x01: "user", 0x02: "user", 0x04: "group", 0x08: "group", 0x10: "mask", 0x20: "other"}
    out = []
    for tag, perm, ident in struct.iter_unpack("<HHI", raw[4:]):
        named = str(ident) if tag in (0x02, 0x08) else ""
        perms = "".join(c if perm & bit else "-" for c, bit in (("r", 4), ("w", 2), ("x", 1)))
        out.append(f"{names[tag]}:{named}:{perms}")
    return out


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
                  f"echo kept > $ZEPPELIN_VOLUME_DATA/file && cat $ZEPPELIN_VOLUME_DATA/file > {out}/volume 2>&1; "
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

        # Its own volume directory is its own, and it wrote there by the path it was given.
        volume = self.volume("asuser", "app", 0)
        self.assertEqual(read("volume"), "kept\n")
        self.assertEqual((os.stat(volume).st_uid, os.stat(volume).st_gid), (uid, gid))
        with open(os.path.join(volume, "file")) as f:
            self.assertEqual(f.read(), "kept\n")
        self.assertEqual(os.stat(os.path.join(volume, "file")).st_uid, uid)
        # Above it nothing changed hands: each directory lets the account pass (x) and nothing more.
        # The 1 in 710 is the ACL's mask; the owning group's own entry stays ---.
        passage = ["user::rwx", f"user:{uid}:--x", "group::---", "mask::--x", "other::---"]
        chain = [self.home, os.path.join(self.home, "volumes"), os.path.join(self.home, "volumes", "asuser"),
                 os.path.join(self.home, "volumes", "asuser", "app"), os.path.dirname(volume)]
        for path in chain:
            st = os.stat(path)
            self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o710), path)
            self.assertEqual(acl_entries(path), passage, path)
        mode = subprocess.run(["stat", "-c", "%a", self.home], capture_output=True, text=True, check=True).stdout
        self.assertEqual(mode, "710\n")

        # Checked from outside as the account: it may pass, not list, and reaches nothing else.
        def as_account(*argv):
            return subprocess.run(argv, capture_output=True, text=True, timeout=30, user=uid, group=gid,
                                  extra_groups=[], cwd="/").returncode

        self.assertEqual(as_account("cat", os.path.join(volume, "file")), 0)
        for listed in chain:
            self.assertNotEqual(as_account("ls", listed), 0, listed)
        self.assertNotEqual(as_account("cat", os.path.join(self.home, "credentials", "store-root")), 0)
        for private in ("credentials", "logs", "store"):
            path = os.path.join(self.home, private)
            self.assertTrue(os.path.isdir(path), path)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o700, path)
            self.assertEqual(acl_entries(path), [], path)
            self.assertNotEqual(as_account("ls", path), 0, path)
        self.assertNotEqual(as_account("ls", os.path.join(self.home, "logs", "asuser")), 0)

        row = self.replica("app", 0, "asuser")
        self.assertEqual(row["state"], "running")

        # A server starting again tightens looser bits but keeps the passage (and says nothing of it).
        old_server = self.server_pid()
        os.kill(old_server, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{old_server}/stat")
                 or open(f"/proc/{old_server}/stat").read().split(")")[-1].split()[0] == "Z", what="server gone")
        os.chmod(chain[1], 0o755)
        self.zeppelin("server", "-d")  # the server again
        for path in chain:
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o710, path)
            self.assertEqual(acl_entries(path), passage, path)
        with open(os.path.join(self.home, "server.log")) as f:
            log = f.read()
        self.assertIn(f"tightened the mode of {chain[1]} from 0755 to 0710", log)
        self.assertNotIn(f"tightened the mode of {self.home} ", log)

        # Removing the system takes the passage back, where the directories remain.
        self.zeppelin("down", "asuser")
        for path in chain[:2]:
            self.assertEqual(acl_entries(path), [], path)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o700, path)
        for path in chain[2:]:  # the volume is kept, and the way to it closed
            self.assertNotIn(f"user:{uid}:--x", acl_entries(path), path)
        self.assertNotEqual(as_account("cat", os.path.join(volume, "file")), 0)

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
