"""`zeppelin kv`, `zeppelin lock` and `zeppelin elect` against zeppelin's
embedded etcd API (found through the local server's GET /v1/etcd) and
against a real etcd (Debian's etcd-server, started here), plus a server
running with `--store etcd`."""
import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import unittest

from harness import BIN, Servers, free_port, wait_for


class Lines:
    """The stdout lines of a running process, read on a thread."""

    def __init__(self, proc):
        self.proc = proc
        self.queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def next(self, timeout=30):
        line = self.queue.get(timeout=timeout)
        if line is None:
            raise AssertionError(f"process exited ({self.proc.wait()}) before printing a line")
        return line


class CoordCliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="zeppelin-coord-")
        cls.servers = Servers(cls.dir)
        cls.etcd_url = "http://" + cls.servers.etcd("coord")
        # A server on the embedded store serving its etcd API, and one on the real etcd.
        cls.embedded_home = os.path.join(cls.dir, "embedded")
        cls.servers.start([BIN, "server", "--home", cls.embedded_home, "--etcd-listen",
                           f"127.0.0.1:{free_port()}"], "embedded.log")
        cls.etcd_home = os.path.join(cls.dir, "etcd-backed")
        wait_for(lambda: cls.run_cli(["kv", "ls", "--endpoints", cls.etcd_url], None).returncode == 0,
                 timeout=30, what="etcd")
        cls.servers.start([BIN, "server", "--home", cls.etcd_home, "--store", "etcd", "--etcd-endpoints",
                           cls.etcd_url, "--etcd-prefix", "/zeppelin-e2e/"], "etcd-backed.log")
        for home in (cls.embedded_home, cls.etcd_home):
            wait_for(lambda: os.path.exists(os.path.join(home, "zeppelin.sock")), timeout=30,
                     what=f"a server in {home}")

    @classmethod
    def tearDownClass(cls):
        cls.servers.stop()

    @classmethod
    def env(cls, target):
        env = dict(os.environ)
        env.pop("ZEPPELIN_ETCD_ENDPOINTS", None)
        # "embedded": no endpoints given, so the CLI asks the local server (GET /v1/etcd).
        env["ZEPPELIN_HOME"] = cls.embedded_home
        if target == "etcd":
            env["ZEPPELIN_ETCD_ENDPOINTS"] = cls.etcd_url
        return env

    @classmethod
    def run_cli(cls, args, target, input=None, timeout=60):
        return subprocess.run([BIN, *args], env=cls.env(target or "etcd"), input=input, capture_output=True,
                              text=True, timeout=timeout)

    def cli(self, target, *args, input=None, code=0):
        r = self.run_cli(list(args), target, input=input)
        self.assertEqual(r.returncode, code, f"zeppelin {' '.join(args)} ({target}): {r.stderr}")
        return r.stdout

    def popen(self, target, *args):
        p = subprocess.Popen([BIN, *args], env=self.env(target), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        def stop():
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdout.close()
            p.stderr.close()
        self.addCleanup(stop)
        return p

    def test_kv_put_get_del_ls(self):
        for target in ("embedded", "etcd"):
            with self.subTest(target=target):
                self.assertEqual(self.cli(target, "kv", "put", "kv/a", "one"), "OK\n")
                self.cli(target, "kv", "put", "kv/b", "-", input="two\nlines")
                self.cli(target, "kv", "put", "kv0", "outside")
                self.assertEqual(self.cli(target, "kv", "get", "kv/a"), "kv/a\none\n")
                got = json.loads(self.cli(target, "kv", "get", "kv/", "--prefix", "-w", "json"))
                self.assertEqual([(kv["key"], kv["value"], kv["version"]) for kv in got["kvs"]],
                                 [("kv/a", "one", 1), ("kv/b", "two\nlines", 1)])
                self.assertEqual(got["count"], 2)
                self.assertEqual(self.cli(target, "kv", "ls", "kv/"), "kv/a\nkv/b\n")
                self.assertEqual(json.loads(self.cli(target, "kv", "ls", "kv/", "-o", "json"))["keys"], ["kv/a", "kv/b"])
                self.assertEqual(json.loads(self.cli(target, "kv", "get", "kv/a", "-o", "json"))["count"], 1)
                self.assertEqual(self.cli(target, "kv", "del", "kv/", "--prefix"), "2\n")
                self.assertEqual(self.cli(target, "kv", "get", "kv/a", code=1), "")
                self.assertEqual(self.cli(target, "kv", "ls", "kv"), "kv0\n")
                self.assertEqual(self.cli(target, "kv", "del", "kv0"), "1\n")

    def test_kv_watch_prints_events_from_a_revision_until_interrupted(self):
        for target in ("embedded", "etcd"):
            with self.subTest(target=target):
                self.cli(target, "kv", "put", "w/a", "1")
                rev = json.loads(self.cli(target, "kv", "get", "w/a", "-w", "json"))["kvs"][0]["mod_revision"]
                watch = self.popen(target, "kv", "watch", "w/", "--prefix", "--rev", str(rev))
                lines = Lines(watch)
                self.cli(target, "kv", "put", "w/b", "2")
                self.cli(target, "kv", "put", "x", "not watched")
                self.cli(target, "kv", "del", "w/a")
                seen = [lines.next() for _ in range(9)]
                self.assertEqual(seen, ["PUT", "w/a", "1", "PUT", "w/b", "2", "DELETE", "w/a", ""])
                watch.send_signal(signal.SIGINT)
                self.assertEqual(watch.wait(timeout=30), 0, watch.stderr.read())
                self.cli(target, "kv", "del", "w/", "--prefix")

    def test_bad_endpoint_is_a_usage_error(self):
        r = self.run_cli(["kv", "get", "k", "--endpoints", "ftp://nowhere"], "etcd")
        self.assertEqual(r.returncode, 2)
        self.assertIn("ftp://nowhere", r.stderr)

    def test_server_with_store_etcd_announces_the_users_etcd(self):
        env = dict(os.environ, ZEPPELIN_HOME=self.etcd_home)
        env.pop("ZEPPELIN_ETCD_ENDPOINTS", None)
        r = subprocess.run([BIN, "kv", "put", "announced", "yes"], env=env, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        # The key went to the real etcd: the server handed out its endpoints.
        self.assertEqual(self.cli("etcd", "kv", "get", "announced"), "announced\nyes\n")
        self.cli("etcd", "kv", "del", "announced")

    def test_lock_is_mutually_exclusive_and_passes_the_exit_code(self):
        for target in ("embedded", "etcd"):
            with self.subTest(target=target):
                counter = os.path.join(self.dir, f"counter-{target}")
                with open(counter, "w") as f:
                    f.write("0\n")
                # Read, pause, write: without the lock, concurrent holders lose updates.
                script = f"n=$(cat {counter}); sleep 0.2; echo $((n+1)) > {counter}"
                holders = [self.popen(target, "lock", "counter", "--", "sh", "-c", script) for _ in range(6)]
                for p in holders:
                    self.assertEqual(p.wait(timeout=120), 0, p.stderr.read())
                with open(counter) as f:
                    self.assertEqual(f.read().strip(), "6")
                r = self.run_cli(["lock", "counter", "--", "sh", "-c", "exit 7"], target)
                self.assertEqual(r.returncode, 7, r.stderr)
                # Every holder released: the lock is free again.
                self.cli(target, "lock", "counter", "--", "true")

    def test_elect_hands_leadership_over_when_the_leader_dies(self):
        for target in ("embedded", "etcd"):
            with self.subTest(target=target):
                name = f"leader-{target}"
                observer = Lines(self.popen(target, "elect", "--listen", name))
                first = self.popen(target, "elect", name, "alpha", "--ttl", "2")
                self.assertEqual(Lines(first).next(), "alpha")
                self.assertEqual(observer.next(), "alpha")
                second = self.popen(target, "elect", name, "beta", "--ttl", "2")
                second_lines = Lines(second)
                first.send_signal(signal.SIGKILL)  # no resign: leadership ends with its lease
                first.wait()
                self.assertEqual(second_lines.next(), "beta")
                self.assertEqual(observer.next(), "beta")
                second.send_signal(signal.SIGTERM)  # resigns
                self.assertEqual(second.wait(timeout=30), 0, second.stderr.read())
                self.assertEqual(self.cli(target, "kv", "ls", name + "/"), "")


if __name__ == "__main__":
    unittest.main()
