"""A real Docker engine for tests: a private dockerd on its own unix socket and
directories (no systemd, no registry, no bridge network here), and a test image
made without any registry from Debian's busybox-static."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.parse

TEST_IMAGE = "zeppelin-test/busybox:1"
BUSYBOX = "/bin/busybox"  # busybox-static: no shared libraries to copy


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("docker", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class DockerEngine:
    def __init__(self):
        # Short path: unix socket paths are limited to 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="zd-", dir="/tmp")
        self.socket = os.path.join(self.dir, "docker.sock")
        self.host = "unix://" + self.socket
        self.proc = None

    def start(self, timeout=60):
        for tool in ("dockerd", "containerd", "runc"):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} not found: scripts/setup.sh installs docker.io")
        with open(os.path.join(self.dir, "dockerd.log"), "w") as log:
            self.proc = subprocess.Popen(
                ["dockerd", "--data-root", os.path.join(self.dir, "data"), "--exec-root", os.path.join(self.dir, "exec"),
                 "--pidfile", os.path.join(self.dir, "dockerd.pid"), "-H", self.host,
                 "--iptables=false", "--bridge=none"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dockerd exited:\n" + self.log_tail())
            try:
                if self.request("GET", "/_ping")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("dockerd did not answer within %ds:\n%s" % (timeout, self.log_tail()))

    def log_tail(self):
        with open(os.path.join(self.dir, "dockerd.log")) as f:
            return f.read()[-3000:]

    def request(self, method, path, body=None, headers=None, timeout=120):
        conn = UnixHTTPConnection(self.socket, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, data
        finally:
            conn.close()

    def json(self, method, path, body=None):
        status, data = self.request(method, path, json.dumps(body) if body is not None else None,
                                    {"Content-Type": "application/json"})
        return status, (json.loads(data) if data.strip().startswith((b"{", b"[")) else data)

    def import_busybox(self, reference=TEST_IMAGE):
        """docker import of a rootfs holding busybox and its applets."""
        root = os.path.join(self.dir, "rootfs")
        os.makedirs(os.path.join(root, "bin"))
        for d in ("tmp", "etc", "www"):
            os.makedirs(os.path.join(root, d))
        shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
        applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                os.symlink("busybox", os.path.join(root, "bin", applet))
        tar_path = os.path.join(self.dir, "rootfs.tar")
        with tarfile.open(tar_path, "w") as tar:
            tar.add(root, arcname=".")
        repo, tag = reference.rsplit(":", 1)
        query = urllib.parse.urlencode({"fromSrc": "-", "repo": repo, "tag": tag,
                                        "changes": 'CMD ["/bin/sh"]'})
        with open(tar_path, "rb") as f:
            status, data = self.request("POST", "/images/create?" + query, f.read(),
                                        {"Content-Type": "application/x-tar"})
        if status != 200 or b'"error"' in data:
            raise RuntimeError(f"image import failed: {status} {data[-500:]!r}")
        if self.request("GET", f"/images/{reference}/json")[0] != 200:
            # Podman's import names the image REPO:latest whatever the tag: tag it as asked.
            self.request("POST", "/images/" + repo + ":latest/tag?" + urllib.parse.urlencode({"repo": repo, "tag": tag}))
        return reference

    def containers(self, label=None, all=True):
        filters = {"label": [label]} if label else {}
        query = urllib.parse.urlencode({"all": "1" if all else "0", "filters": json.dumps(filters)})
        return self.json("GET", "/containers/json?" + query)[1]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                for c in self.containers():
                    self.request("DELETE", f"/containers/{c['Id']}?force=1&v=1")
            except OSError:
                pass
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # The daemon leaves overlay and shm mounts behind when it dies hard.
        with open("/proc/mounts") as f:
            mounts = [line.split()[1] for line in f if line.split()[1].startswith(self.dir)]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
