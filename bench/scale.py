#!/usr/bin/env python3
"""How the server copes with large systems: apply, status (`ps`) and removal
(`down`) of systems of many replicas or many services, and how long the API
keeps answering meanwhile.

Each case is one system applied to a server of its own (its own
ZEPPELIN_HOME, the embedded store). Its replicas are *held back*: every
service depends on `gate`, one replica whose health check never passes, so
they are in desired state, have addresses and appear in `ps`, but are never
started (pid_max here is 32,768: 50,000 processes could not run). A `running`
case starts real processes (`sleep`) instead.

Phases, each timed from the client:
  apply   POST /v1/systems until it answers
  ready   until GET /v1/replicas lists every replica (held back or running)
  ps      GET /v1/replicas?system=NAME (median of 3)
  status  GET /v1/systems/NAME (median of 3)
  down    DELETE /v1/systems/NAME until it answers
During all of them a second connection sends GET /v1/version every 5 ms;
the table gives its p50/p99/max per case (the target: p99 under 50 ms).

Python 3 standard library only. See bench/README.md.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=600):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(sock_path, method, path, body=None, timeout=600):
    conn = UnixHTTPConnection(sock_path, timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = conn.getresponse()
        data = r.read()
        return r.status, data
    finally:
        conn.close()


def make_spec(name, services, replicas, held_back):
    lines = [f"name: {name}", "services:"]
    if held_back:
        # Never healthy: everything that depends on it stays pending.
        lines += ["  gate:", '    command: ["sleep", "100000"]', "    health:", '      exec: ["false"]',
                  "      interval: 1h"]
    for i in range(services):
        lines += [f"  s{i}:", '    command: ["sleep", "100000"]', f"    replicas: {replicas}"]
        if held_back:
            lines.append("    depends_on: [gate]")
    return "\n".join(lines) + "\n"


class VersionProbe:
    """GET /v1/version every `period` seconds on its own connections; latencies in ms.

    It runs in a process of its own: a thread here would wait for the GIL
    whenever this process parses a large answer, and count that as the
    server's latency."""

    def __init__(self, sock_path, period=0.005):
        self.sock_path, self.period = sock_path, period
        self.samples = []
        self.errors = 0
        self._stop = multiprocessing.Event()
        self._receive, send = multiprocessing.Pipe(duplex=False)
        self._process = multiprocessing.Process(target=self._run, args=(send,), daemon=True)

    def _run(self, send):
        samples, errors = [], 0
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                status, _ = call(self.sock_path, "GET", "/v1/version", timeout=120)
                if status != 200:
                    errors += 1
            except OSError:
                errors += 1
            samples.append((time.perf_counter() - t0) * 1000)
            self._stop.wait(self.period)
        send.send((samples, errors))

    def __enter__(self):
        self._process.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.samples, self.errors = self._receive.recv()
        self._process.join()


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def start_server(binary, home, extra_args):
    log = open(os.path.join(home, "server.log"), "w")
    proc = subprocess.Popen([binary, "server", "--home", home, *extra_args], stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, ZEPPELIN_HOME=home))
    sock = os.path.join(home, "zeppelin.sock")
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}; see {home}/server.log")
        try:
            if call(sock, "GET", "/v1/version", timeout=5)[0] == 200:
                return proc, sock
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not answer within 60 s")


def run_case(binary, label, services, replicas, held_back, timeout, server_args):
    home = tempfile.mkdtemp(prefix="zeppelin-scale-")
    os.chmod(home, 0o700)
    proc = None
    try:
        proc, sock = start_server(binary, home, server_args)
        name = "scale"
        spec_text = make_spec(name, services, replicas, held_back)
        spec_file = os.path.join(home, "scale.yaml")
        Path(spec_file).write_text(spec_text)
        expected = services * replicas + (1 if held_back else 0)
        row = {"case": label, "replicas": services * replicas, "services": services}
        with VersionProbe(sock) as probe:
            t0 = time.perf_counter()
            status, body = call(sock, "POST", "/v1/systems", {"spec_file": spec_file, "spec_text": spec_text, "env": {}})
            row["apply_s"] = time.perf_counter() - t0
            if status >= 300:
                raise RuntimeError(f"apply answered {status}: {body[:300]!r}")
            deadline = time.time() + timeout
            while True:
                status, body = call(sock, "GET", f"/v1/replicas?system={name}")
                rows = json.loads(body)
                if len(rows) >= expected and (held_back or all(r.get("state") == "running" for r in rows)):
                    break
                if time.time() > deadline:
                    raise RuntimeError(f"{len(rows)}/{expected} replicas after {timeout} s")
                time.sleep(0.2)
            row["ready_s"] = time.perf_counter() - t0
            for route, key in ((f"/v1/replicas?system={name}", "ps_s"), (f"/v1/systems/{name}", "status_s")):
                times = []
                for _ in range(3):
                    t1 = time.perf_counter()
                    status, _ = call(sock, "GET", route)
                    times.append(time.perf_counter() - t1)
                    if status != 200:
                        raise RuntimeError(f"GET {route} answered {status}")
                row[key] = statistics.median(times)
            t1 = time.perf_counter()
            status, body = call(sock, "DELETE", f"/v1/systems/{name}")
            row["down_s"] = time.perf_counter() - t1
            if status != 200:
                raise RuntimeError(f"DELETE answered {status}: {body[:300]!r}")
        row["version_p50_ms"] = percentile(probe.samples, 50)
        row["version_p99_ms"] = percentile(probe.samples, 99)
        row["version_max_ms"] = max(probe.samples) if probe.samples else float("nan")
        row["version_n"] = len(probe.samples)
        row["version_errors"] = probe.errors
        return row
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(home, ignore_errors=True)


CASES = {
    # label: (services, replicas per service, held back)
    "1k-replicas": (1, 1000, True),
    "10k-replicas": (1, 10000, True),
    "50k-replicas": (5, 10000, True),
    "1k-services": (1000, 1, True),
    "10k-services": (10000, 1, True),
    "1k-running": (10, 100, False),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / "build" / "zeppelin"))
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    ap.add_argument("--timeout", type=float, default=600, help="seconds a case may take to list every replica")
    ap.add_argument("--server-arg", action="append", default=[], help="passed to `zeppelin server` (repeatable)")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    rows = []
    cols = ["case", "replicas", "services", "apply_s", "ready_s", "ps_s", "status_s", "down_s", "version_p50_ms",
            "version_p99_ms", "version_max_ms", "version_n"]
    print(" | ".join(cols))
    for label in args.cases.split(","):
        services, replicas, held_back = CASES[label]
        try:
            # The default limits (1,000 services and 10,000 replicas per system) are below these cases.
            limits = ["--max-services-per-system", str(max(1000, services + 1)),
                      "--max-replicas-per-system", str(max(10000, services * replicas + 1))]
            row = run_case(args.binary, label, services, replicas, held_back, args.timeout,
                           ["--etcd-listen", "127.0.0.1:0", *limits, *args.server_arg])
        except Exception as e:  # one failed case must not hide the others
            print(f"{label}: failed: {e}", file=sys.stderr)
            rows.append({"case": label, "error": str(e)})
            continue
        rows.append(row)
        print(" | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in cols), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
