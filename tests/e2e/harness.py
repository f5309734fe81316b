"""Drives the real zeppelin binary against real processes, each test in its own
$ZEPPELIN_HOME. Waiting is bounded polling of observable state, never a fixed sleep."""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
import unittest
import urllib.request

BIN = os.environ.get("ZEPPELIN_BIN") or os.path.join(os.path.dirname(__file__), "..", "..", "build", "zeppelin")
APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps")
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spec_corpus")
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Servers:
    """Server processes a test class starts in `directory` and stops at the end,
    each with its output in a log file there."""

    def __init__(self, directory):
        self.dir = directory
        self.procs = []

    def start(self, argv, log, env=None):
        out = open(os.path.join(self.dir, log), "w")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.procs.append((proc, out))
        return proc

    def etcd(self, name):
        """A one-member etcd on free loopback ports; returns its client endpoint, HOST:PORT."""
        client, peer = free_port(), free_port()
        endpoint = f"127.0.0.1:{client}"
        self.start([ETCD, "--name", name, "--data-dir", os.path.join(self.dir, f"{name}-data"),
                    "--listen-client-urls", f"http://{endpoint}", "--advertise-client-urls", f"http://{endpoint}",
                    "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                    "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                    "--initial-cluster", f"{name}=http://127.0.0.1:{peer}"], f"{name}.log")
        return endpoint

    def zeppelin_etcd_api(self, name, insecure=False):
        """`zeppelin server --etcd-listen` on a free loopback port; returns that endpoint.
        `insecure` serves it with auth off, as a plain etcd is, for tests that compare the two."""
        endpoint = f"127.0.0.1:{free_port()}"
        home = os.path.join(self.dir, name)
        self.start([BIN, "server", "--home", home, "--etcd-listen", endpoint] + (["--insecure-store"] if insecure else []),
                   f"{name}.log", env=dict(os.environ, ZEPPELIN_HOME=home))
        return endpoint

    def etcd_and_zeppelin(self, name):
        """A real etcd and zeppelin's etcd API beside it, both serving with auth off (they
        are compared request for request); returns their endpoints."""
        endpoints = self.etcd(name), self.zeppelin_etcd_api("home", insecure=True)
        self.wait_serving(*endpoints)
        return endpoints

    def wait_serving(self, *endpoints):
        for endpoint in endpoints:
            wait_for(lambda: subprocess.run([ETCDCTL, f"--endpoints={endpoint}", "endpoint", "status"],
                                            env=dict(os.environ, ETCDCTL_API="3"),
                                            capture_output=True).returncode == 0,
                     timeout=30, what=f"an etcd API on {endpoint}")

    def stop(self):
        """Stops the processes, the last started first (servers before the etcd they use)."""
        for proc, _ in reversed(self.procs):
            proc.send_signal(signal.SIGTERM)
        for proc, out in reversed(self.procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def store_root_password(home):
    """The root password the server of `home` made for its store, or None."""
    try:
        with open(os.path.join(home, "credentials", "store-root")) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def wait_for(predicate, timeout=20.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def processes_with_marker(home):
    """Pids of live processes started by the server of `home` (their environment carries it)."""
    needle = f"ZEPPELIN_SUPERVISOR={home}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    with open(f"/proc/{entry}/stat") as s:
                        if s.read().split(")")[-1].split()[0] != "Z":
                            found.append(int(entry))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return found


class UnixConnection(http.client.HTTPConnection):
    """HTTP over the server's unix socket."""

    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def api_get(home, path, timeout=10.0):
    """GET on the server's unix socket; the decoded JSON body."""
    conn = UnixConnection(os.path.join(home, "zeppelin.sock"), timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise AssertionError(f"GET {path}: {r.status} {body!r}")
        return json.loads(body)
    finally:
        conn.close()


def http_get(address, path, timeout=2.0):
    with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as r:
        return r.status, r.read()


class ZeppelinTestCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zeppelin-e2e-")
        self.home = os.path.join(self.dir, "home")
        self.env = dict(os.environ, ZEPPELIN_HOME=self.home)

    def tearDown(self):
        subprocess.run([BIN, "shutdown"], env=self.env, timeout=60, capture_output=True)
        pid = self.server_pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
        leftovers = processes_with_marker(self.home)
        for p in leftovers:
            print("LEFTOVER", open(f"/proc/{p}/stat").read(), open(f"/proc/{p}/cmdline").read().replace("\0", " "))
        if leftovers: print(open(self.home + "/server.log").read()[-3000:])
        for p in leftovers:
            os.kill(p, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.assertEqual(leftovers, [], "replicas outlived their server")

    def start_server(self, *flags):
        """`zeppelin server` with `flags`, logging to server.out, once its API answers.
        (Without this, the first command starts a server with default flags.)"""
        out = os.path.join(self.dir, "server.out")
        with open(out, "w") as log:
            self.server = subprocess.Popen([BIN, "server", "--home", self.home, *flags], env=self.env, stdout=log,
                                           stderr=subprocess.STDOUT)
        self.addCleanup(self.server.wait, 60)

        def up():
            if self.server.poll() is not None:
                with open(out) as f:
                    raise AssertionError(f"the server exited {self.server.returncode}: {f.read()}")
            try:
                api_get(self.home, "/v1/version")
                return True
            except OSError:
                return False
        wait_for(up, timeout=60, what="the server's API")

    def zeppelin(self, *args, check=True, timeout=120, **kw):
        r = subprocess.run([BIN, *args], env=self.env, cwd=self.dir, capture_output=True, text=True,
                           timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"zeppelin {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def write_spec(self, text, name="zeppelin.yaml"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text).replace("@APPS@", APPS))
        return path

    def ps(self, system=None):
        args = ["ps", "-o", "json"] + ([system] if system else [])
        return json.loads(self.zeppelin(*args).stdout)

    def replica(self, service, ordinal, system=None):
        for row in self.ps(system):
            if row["service"] == service and row["replica"] == ordinal:
                return row
        return None

    def server_pid(self):
        """The pid of the server of self.home, or None.

        Under AddressSanitizer, an exiting server's leak check runs in a clone of
        it (no exec: the same command line) that must not be mistaken for the
        server: killed, it leaves the server waiting for it forever. So the
        server is the match whose parent is no match."""
        needle = f"server --home {self.home} "
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode()
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if needle in cmd and "zeppelin" in cmd and fields[0] != "Z":
                    parents[int(entry)] = int(fields[1])
        for pid, parent in parents.items():
            if parent not in parents:
                return pid
        return None

    def etcd_endpoints(self):
        """The server's coordination store, as GET /v1/etcd announces it."""
        return ",".join(api_get(self.home, "/v1/etcd")["endpoints"])

    def etcdctl(self, *args, check=True, timeout=30):
        """etcdctl on the server's store, as root (the owner) unless args name a --user."""
        user = []
        password = store_root_password(self.home)
        if password and not any(a.startswith("--user") for a in args):
            user = [f"--user=root:{password}"]
        r = subprocess.run([ETCDCTL, f"--endpoints={self.etcd_endpoints()}", "--command-timeout=10s", *user, *args],
                           env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"etcdctl {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def store_get(self, prefix):
        """{key: value} of every key under `prefix` in the server's store."""
        out = json.loads(self.etcdctl("get", "--prefix", prefix, "-w", "json").stdout)
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
                for kv in out.get("kvs", [])}

    def volume(self, system, service, ordinal, name="data"):
        return os.path.join(self.home, "volumes", system, service, str(ordinal), name)
