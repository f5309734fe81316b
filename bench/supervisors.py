#!/usr/bin/env python3
"""Side-by-side benchmark: zeppelin vs supervisord vs PM2, against a floor.

For each tool and each N in --sizes it runs N copies of the trivial replica
(build/bench/bench_replica, the same binary for every tool) and measures:

  start    time from issuing the start command until N datagrams from distinct
           replica ids have arrived at our UDP socket (127.0.0.1, port 0)
  restart  p50 time from `kill -9` of one replica until a datagram with the
           same replica id and a new pid arrives (each victim killed once)
  rss      VmRSS of the supervisor process itself with N replicas running
  stop     time from issuing the stop command until it has returned and every
           replica pid is gone

The "floor" tool is build/bench/bench_spawn_floor, the most minimal supervisor
possible (posix_spawn in a loop, sigwaitinfo + waitpid, re-spawn, nothing else):
the lower bound on this machine for spawning N processes one by one and for
restarting one. The table's zeppelin/floor column shows how far zeppelin is from it.

Each (tool, N) is repeated --runs times; the table shows medians. Every phase is
bounded by --phase-timeout and records "timeout" instead of hanging; everything
started is cleaned up in `finally` blocks. Python 3 standard library only.
See bench/README.md.
"""

import argparse
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = ("floor", "zeppelin", "supervisord", "pm2")
METRICS = (  # key, table label, unit scale, format
    ("start_s", "start all N (s)", 1.0, "{:.3f}"),
    ("restart_p50_ms", "restart after kill -9, p50 (ms)", 1.0, "{:.1f}"),
    ("rss_mib", "supervisor RSS (MiB)", 1.0, "{:.1f}"),
    ("stop_s", "stop all N (s)", 1.0, "{:.3f}"),
)
REPLICA_NAME = "bench_replica"
# Variables that would give every replica the same id if they leaked in from
# the caller's environment.
ID_VARS = ("BENCH_ID", "ZEPPELIN_SERVICE", "ZEPPELIN_REPLICA", "NODE_APP_INSTANCE")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class PhaseTimeout(Exception):
    pass


# ---------------------------------------------------------------- processes

def proc_state(pid):
    """(comm, state) of a live pid, or None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    lp, rp = data.find("("), data.rfind(")")
    return data[lp + 1:rp], data[rp + 2:rp + 3]


def replica_alive(pid):
    """True while `pid` is a bench_replica that has not exited (zombies count as gone)."""
    st = proc_state(pid)
    return st is not None and st[0] == REPLICA_NAME and st[1] != "Z"


def pid_alive(pid):
    st = proc_state(pid)
    return st is not None and st[1] != "Z"


def vm_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def find_pids_by_cmdline(*needles):
    """Pids whose NUL-separated argv contains every needle as an element."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if all(n in argv for n in needles):
            out.append(int(entry))
    return out


def kill_and_wait(pid, grace=5.0):
    """SIGTERM, then SIGKILL after `grace` seconds. Only for pids we started."""
    if pid is None or not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def await_exit_or_kill(pid, seconds, what, after):
    """Waits (bounded) for a supervisor daemon to exit after its own shutdown command; kills it if it does not."""
    deadline = time.monotonic() + seconds
    while pid and pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid and pid_alive(pid):
        log(f"  {what} {pid} still running after {after}; killing it")
        kill_and_wait(pid)


def run_cmd(argv, env, timeout, what, check=True, log_file=None):
    """Runs a command to completion within `timeout`; returns (rc, output)."""
    try:
        p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise PhaseTimeout(f"{what}: `{' '.join(argv)}` did not return within {timeout:.0f}s") from e
    out = p.stdout.decode(errors="replace")
    if log_file:
        with open(log_file, "a") as f:
            f.write(f"$ {' '.join(argv)}\n{out}\n")
    if check and p.returncode != 0:
        raise RuntimeError(f"{what}: `{' '.join(argv)}` exited {p.returncode}: {out.strip()[-2000:]}")
    return p.returncode, out


def wait_exit(proc, timeout):
    """Waits for a child of ours to exit; returns its exit status, or None on timeout.
    Uses a pidfd where available (wakes up at once; Popen.wait(timeout) polls in
    up to 50 ms steps), else polls every millisecond."""
    if proc.poll() is not None:
        return proc.returncode
    deadline = time.monotonic() + timeout
    fd = None
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pass
    try:
        while proc.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if fd is not None:
                select.select([fd], [], [], remaining)
            else:
                time.sleep(min(remaining, 0.001))
        return proc.returncode
    finally:
        if fd is not None:
            os.close(fd)


# ----------------------------------------------------------------- listener

class Listener:
    """Receives "<id> <pid>" datagrams on 127.0.0.1:<ephemeral port>."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:  # 1000 replicas may announce themselves at once
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        except OSError:
            pass
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.cond = threading.Condition()
        self.events = []       # (monotonic time, id, pid), in arrival order
        self.first_seen = {}   # id -> time of its first datagram
        self.latest = {}       # id -> latest pid
        self.all_pids = set()  # every pid ever announced (for cleanup)
        self.bad = 0
        self._closed = False
        self.thread = threading.Thread(target=self._loop, name="udp", daemon=True)
        self.thread.start()

    def _loop(self):
        while not self._closed:
            try:
                data = self.sock.recv(1024)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            try:
                rid, pid = data.decode().rsplit(" ", 1)
                pid = int(pid)
            except ValueError:
                with self.cond:
                    self.bad += 1
                continue
            with self.cond:
                self.events.append((t, rid, pid))
                self.first_seen.setdefault(rid, t)
                self.latest[rid] = pid
                self.all_pids.add(pid)
                self.cond.notify_all()

    def reset(self):
        with self.cond:
            self.events.clear()
            self.first_seen.clear()
            self.latest.clear()

    def wait(self, predicate, deadline):
        """Waits until predicate() (called under the lock) is truthy; returns it or None."""
        with self.cond:
            while True:
                v = predicate()
                if v:
                    return v
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.cond.wait(min(remaining, 0.5))

    def close(self):
        self._closed = True
        self.thread.join(timeout=2)
        self.sock.close()


# -------------------------------------------------------------------- tools

class Tool:
    name = "?"

    def __init__(self, args, replica, port):
        self.args = args
        self.replica = replica
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix=f"zbench-{self.name}-", dir="/tmp"))
        self.env = {k: v for k, v in os.environ.items() if k not in ID_VARS}
        self.env["BENCH_PORT"] = str(port)
        self.log_file = self.dir / "commands.log"
        self.daemon_pid = None
        self.proc = None  # the supervisor, when the start command is the supervisor itself (floor)

    def cmd(self, argv, timeout, what, check=True):
        return run_cmd(argv, self.env, timeout, what, check=check, log_file=self.log_file)

    # setup(n): write config and start the daemon (not timed)
    # start_argv(), stop_argv(): the timed commands
    # supervisor_pid(): the process whose RSS is reported
    # teardown(): stop everything, best effort

    # True when the start command is the supervisor itself and keeps running
    # (floor): it is adopted as self.proc instead of waited for.
    start_is_supervisor = False

    def stop(self, timeout):
        """The timed stop; returns when the stop command has returned."""
        self.cmd(self.stop_argv(), timeout, "stop")

    def cleanup_dir(self):
        if self.args.keep:
            log(f"  keeping {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class Floor(Tool):
    """bench_spawn_floor: posix_spawn N copies, re-spawn on SIGCHLD, nothing else."""
    name = "floor"
    start_is_supervisor = True

    def __init__(self, args, replica, port):
        super().__init__(args, replica, port)
        self.n = None

    def setup(self, n):
        self.n = n  # nothing to set up: there is no daemon but the floor itself

    def start_argv(self):
        return [str(Path(self.args.floor).resolve()), str(self.n), self.replica]

    def supervisor_pid(self):
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def stop(self, timeout):
        """SIGTERM; returns when the floor has exited (after reaping every copy)."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"floor not running (exit status {self.proc.returncode if self.proc else None})")
        self.proc.send_signal(signal.SIGTERM)
        rc = wait_exit(self.proc, timeout)
        if rc is None:
            raise PhaseTimeout(f"stop: floor {self.proc.pid} did not exit within {timeout:.0f}s of SIGTERM")
        if rc != 0:
            raise RuntimeError(f"stop: floor exited {rc}")

    def teardown(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if wait_exit(self.proc, 30) is None:
                log(f"  floor {self.proc.pid} still running 30s after SIGTERM; killing it")
                self.proc.kill()
        self.proc.wait()


class Zeppelin(Tool):
    name = "zeppelin"

    def __init__(self, args, replica, port):
        super().__init__(args, replica, port)
        self.bin = str(Path(args.zeppelin).resolve())
        self.home = str(self.dir / "home")
        self.env["ZEPPELIN_HOME"] = self.home
        self.spec = self.dir / "zeppelin.yaml"

    def setup(self, n):
        self.spec.write_text(
            "name: bench\n"
            "services:\n"
            "  r:\n"
            f"    command: [{json.dumps(self.replica)}]\n"
            f"    replicas: {n}\n")
        # Starts the background server, so that its start-up is not timed.
        self.cmd([self.bin, "server", "-d"], 60, "zeppelin server -d")
        self.daemon_pid = self.supervisor_pid()

    def start_argv(self):
        return [self.bin, "run", "-d", "-f", str(self.spec), "--timeout", "5m"]

    def stop_argv(self):
        return [self.bin, "stop", "bench"]

    def supervisor_pid(self):
        pids = find_pids_by_cmdline("server", "--home", self.home)
        return pids[0] if pids else None

    def teardown(self):
        t = self.args.phase_timeout
        for argv in ([self.bin, "down", "bench"], [self.bin, "shutdown"]):
            try:
                self.cmd(argv, t, " ".join(argv[1:]), check=False)
            except PhaseTimeout as e:
                log(f"  {e}")
        pid = self.daemon_pid or self.supervisor_pid()
        await_exit_or_kill(pid, 10, "zeppelin server", "shutdown")


class Supervisord(Tool):
    name = "supervisord"

    def __init__(self, args, replica, port):
        super().__init__(args, replica, port)
        self.conf = self.dir / "supervisord.conf"
        self.sock = self.dir / "supervisor.sock"
        self.pidfile = self.dir / "supervisord.pid"

    def setup(self, n):
        (self.dir / "logs").mkdir()
        d = self.dir
        self.conf.write_text(f"""\
[unix_http_server]
file={self.sock}
chmod=0700

[supervisord]
logfile={d}/supervisord.log
pidfile={self.pidfile}
childlogdir={d}/logs
nodaemon=false
minfds={max(1024, 8 * n + 256)}
minprocs={max(200, n + 100)}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{self.sock}

[program:r]
command={self.replica}
numprocs={n}
process_name=%(program_name)s_%(process_num)d
autostart=false
startsecs=0
autorestart=true
environment=BENCH_PORT="{self.port}",BENCH_ID="r_%(process_num)d"
""")
        self.cmd([self.args.supervisord, "-c", str(self.conf)], 60, "supervisord start")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.sock.exists() and self.pidfile.exists():
                rc, _ = self.cmd([self.args.supervisorctl, "-c", str(self.conf), "pid"], 30, "supervisorctl pid",
                                 check=False)
                if rc == 0:
                    break
            time.sleep(0.05)
        else:
            raise PhaseTimeout("supervisord did not come up within 60s")
        self.daemon_pid = self.supervisor_pid()

    def start_argv(self):
        return [self.args.supervisorctl, "-c", str(self.conf), "start", "all"]

    def stop_argv(self):
        return [self.args.supervisorctl, "-c", str(self.conf), "stop", "all"]

    def supervisor_pid(self):
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return self.daemon_pid

    def teardown(self):
        pid = self.supervisor_pid()
        if self.sock.exists():
            try:
                self.cmd([self.args.supervisorctl, "-c", str(self.conf), "shutdown"], self.args.phase_timeout,
                         "supervisorctl shutdown", check=False)
            except PhaseTimeout as e:
                log(f"  {e}")
        await_exit_or_kill(pid, 30, "supervisord", "shutdown")


class Pm2(Tool):
    name = "pm2"

    def __init__(self, args, replica, port):
        super().__init__(args, replica, port)
        self.env["PM2_HOME"] = str(self.dir / "pm2")
        self.eco = self.dir / "eco.json"

    def setup(self, n):
        self.eco.write_text(json.dumps({"apps": [{
            "name": "r",
            "script": self.replica,
            "interpreter": "none",
            "exec_mode": "fork",
            "instances": n,
            "autorestart": True,
            "env": {"BENCH_PORT": str(self.port)},
        }]}, indent=2))
        self.cmd([self.args.pm2, "ping"], 60, "pm2 ping (daemon start)")
        self.daemon_pid = self.supervisor_pid()

    def start_argv(self):
        return [self.args.pm2, "start", str(self.eco)]

    def stop_argv(self):
        return [self.args.pm2, "stop", "all"]

    def supervisor_pid(self):
        try:
            return int((Path(self.env["PM2_HOME"]) / "pm2.pid").read_text().strip())
        except (OSError, ValueError):
            return self.daemon_pid

    def teardown(self):
        pid = self.supervisor_pid()
        try:
            self.cmd([self.args.pm2, "kill"], self.args.phase_timeout, "pm2 kill", check=False)
        except PhaseTimeout as e:
            log(f"  {e}")
        await_exit_or_kill(pid, 10, "PM2 daemon", "pm2 kill")


TOOL_CLASSES = {"floor": Floor, "zeppelin": Zeppelin, "supervisord": Supervisord, "pm2": Pm2}


# ------------------------------------------------------------------ one run

def measure(tool, n, lst, args):
    """One run of every phase for one tool and size. Returns a dict of metrics;
    a phase that times out records "timeout" and ends the run."""
    res = {}
    pt = args.phase_timeout
    tool.setup(n)
    lst.reset()

    # a. start
    out_path = tool.dir / "start.out"
    with open(out_path, "wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(tool.start_argv(), env=tool.env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
        if tool.start_is_supervisor:
            tool.proc = proc  # the tool's teardown stops it
        try:
            def started():
                if len(lst.first_seen) >= n:
                    return max(lst.first_seen.values())
                if proc.poll() not in ((None,) if tool.start_is_supervisor else (None, 0)):
                    return "failed"  # the start command gave up; don't wait out the timeout
                return None

            done = lst.wait(started, t0 + pt)
            if done == "failed":
                raise RuntimeError(f"start command exited {proc.returncode}: "
                                   f"{out_path.read_text(errors='replace')[-2000:]}")
            if not done:
                res["start_s"] = "timeout"
                res["note"] = f"only {len(lst.first_seen)}/{n} replicas announced within {pt:.0f}s"
                return res
            res["start_s"] = done - t0
            if tool.start_is_supervisor:
                rc = 0  # keeps running: it is the supervisor
            else:
                try:
                    rc = proc.wait(timeout=max(1.0, t0 + pt - time.monotonic()))
                except subprocess.TimeoutExpired:
                    res["start_cmd_s"] = "timeout"
                    return res
                res["start_cmd_s"] = time.monotonic() - t0
        finally:
            if not tool.start_is_supervisor and proc.poll() is None:
                proc.kill()
                proc.wait()
    if rc != 0:
        raise RuntimeError(f"start command exited {rc}: {out_path.read_text(errors='replace')[-2000:]}")
    if len(lst.first_seen) != n:
        res["note"] = f"{len(lst.first_seen)} distinct replica ids for N={n}"

    # c. RSS of the supervisor with N replicas running (after a short settle)
    time.sleep(args.settle)
    spid = tool.supervisor_pid()
    rss = vm_rss_kib(spid) if spid else None
    res["rss_mib"] = rss / 1024.0 if rss is not None else None
    res["supervisor_pid"] = spid

    # b. restart after kill -9: each victim once (repeated kills of one replica
    # would measure crash-loop back-off instead of restart latency)
    with lst.cond:
        ids = sorted(lst.latest, key=lambda s: (len(s), s))
    kills = min(args.kills, len(ids))
    lat = []
    for i in range(kills):
        rid = ids[(i * len(ids)) // kills]
        with lst.cond:
            old = lst.latest[rid]
            mark = len(lst.events)
        if not replica_alive(old):
            res["note"] = f"replica {rid} pid {old} not alive before kill"
            continue

        def restarted(rid=rid, old=old, mark=mark):
            for t, r, p in lst.events[mark:]:
                if r == rid and p != old:
                    return t
            return None

        t0 = time.monotonic()
        os.kill(old, signal.SIGKILL)
        t = lst.wait(restarted, t0 + pt)
        if t is None:
            res["restart_p50_ms"] = "timeout"
            res["restart_ms"] = lat
            return res
        lat.append((t - t0) * 1000.0)
        time.sleep(args.kill_gap)
    if lat:
        res["restart_p50_ms"] = statistics.median(lat)
        res["restart_ms"] = [round(x, 2) for x in lat]

    # d. stop
    with lst.cond:
        pids = set(lst.latest.values())
    t0 = time.monotonic()
    try:
        tool.stop(pt)
    except PhaseTimeout:
        res["stop_s"] = "timeout"
        return res
    t_cmd = time.monotonic()
    deadline = t0 + pt
    while time.monotonic() < deadline:
        alive = [p for p in pids if replica_alive(p)]
        if not alive:
            break
        time.sleep(0.005)
    else:
        res["stop_s"] = "timeout"
        res["note"] = f"{len(alive)} replicas still alive {pt:.0f}s after stop"
        return res
    res["stop_s"] = time.monotonic() - t0
    res["stop_cmd_s"] = t_cmd - t0
    return res


def run_one(name, n, lst, args):
    tool = TOOL_CLASSES[name](args, args.replica, lst.port)
    try:
        return measure(tool, n, lst, args)
    except (PhaseTimeout, RuntimeError, OSError) as e:
        log(f"  {name} N={n}: error: {e}")
        return {"error": str(e)}
    finally:
        try:
            tool.teardown()
        except Exception as e:  # noqa: BLE001 - cleanup must go on
            log(f"  {name}: teardown failed: {e}")
        # Whatever replica is still around (a supervisor that died, or a phase
        # that timed out) goes too; only pids that announced themselves to us.
        with lst.cond:
            pids = set(lst.all_pids)
        leftovers = [p for p in pids if replica_alive(p)]
        if leftovers:
            log(f"  {name}: killing {len(leftovers)} leftover replicas")
            for p in leftovers:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        tool.cleanup_dir()


# ------------------------------------------------------------------- report

def median_of(runs, key):
    vals = [r.get(key) for r in runs]
    nums = [v for v in vals if isinstance(v, (int, float))]
    if nums:
        return statistics.median(nums)
    if any(v == "timeout" for v in vals):
        return "timeout"
    if any("error" in r for r in runs):
        return "error"
    return None


def fmt(v, f):
    if isinstance(v, (int, float)):
        return f.format(v)
    return v or "–"


def ratio(a, z):
    if isinstance(a, (int, float)) and isinstance(z, (int, float)) and z > 0:
        return f"{a / z:.2f}×"
    return "–"


def table(medians, sizes, tools):
    cols = ["metric", "N", "floor", "zeppelin", "supervisord", "pm2", "supervisord/zeppelin", "pm2/zeppelin",
            "zeppelin/floor"]
    rows = []
    for key, label, _, f in METRICS:
        for n in sizes:
            v = {t: medians.get(t, {}).get(str(n), {}).get(key, "skipped" if t not in tools else None) for t in TOOLS}
            rows.append([label, str(n), fmt(v["floor"], f), fmt(v["zeppelin"], f), fmt(v["supervisord"], f),
                         fmt(v["pm2"], f), ratio(v["supervisord"], v["zeppelin"]), ratio(v["pm2"], v["zeppelin"]),
                         ratio(v["zeppelin"], v["floor"])])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    align = ["<", ">"] + [">"] * (len(cols) - 2)
    line = lambda cells: "| " + " | ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)) + " |"
    out = [line(cols), "|" + "|".join(("-" * (w + 1) + ":" if a == ">" else "-" * (w + 2)) for a, w in
                                      zip(align, widths)) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


# --------------------------------------------------------------------- main

def parse_skip(text):
    skip = set()
    for item in filter(None, (s.strip() for s in text.split(","))):
        tool, _, n = item.partition(":")
        if tool not in TOOLS:
            raise SystemExit(f"--skip: unknown tool {tool!r} (one of {', '.join(TOOLS)})")
        skip.add((tool, int(n) if n else None))
    return skip


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,100,1000", help="comma-separated replica counts (default 10,100,1000)")
    ap.add_argument("--runs", type=int, default=3, help="repetitions per tool and size; medians are reported")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    ap.add_argument("--skip", default="", help="TOOL or TOOL:N to skip, comma-separated (e.g. supervisord:1000)")
    ap.add_argument("--phase-timeout", type=float, default=120.0, help="seconds per phase before 'timeout'")
    ap.add_argument("--kills", type=int, default=20, help="kill -9 victims per run (at most N, each once)")
    ap.add_argument("--kill-gap", type=float, default=0.1, help="pause after each restart before the next kill")
    ap.add_argument("--settle", type=float, default=1.0, help="pause before reading RSS")
    ap.add_argument("--json", metavar="FILE", help="also write medians and every run's raw results here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories (for debugging)")
    ap.add_argument("--zeppelin", default=str(REPO / "build" / "zeppelin"))
    ap.add_argument("--floor", default=str(REPO / "build" / "bench" / "bench_spawn_floor"))
    ap.add_argument("--replica", default=str(REPO / "build" / "bench" / "bench_replica"))
    ap.add_argument("--supervisord", default=shutil.which("supervisord") or "/usr/bin/supervisord")
    ap.add_argument("--supervisorctl", default=shutil.which("supervisorctl") or "/usr/bin/supervisorctl")
    ap.add_argument("--pm2", default=shutil.which("pm2"))
    args = ap.parse_args()

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tools:
        if t not in TOOLS:
            ap.error(f"unknown tool {t!r}")
    skip = parse_skip(args.skip)
    args.replica = str(Path(args.replica).resolve())
    notes = []
    if not os.access(args.replica, os.X_OK):
        ap.error(f"{args.replica} not found; build it: ninja -C build bench_replica")
    if "zeppelin" in tools and not os.access(args.zeppelin, os.X_OK):
        ap.error(f"{args.zeppelin} not found; build it: ninja -C build zeppelin")
    if "floor" in tools and not os.access(args.floor, os.X_OK):
        ap.error(f"{args.floor} not found; build it: ninja -C build bench_spawn_floor")
    if "supervisord" in tools and not (os.access(args.supervisord, os.X_OK) and os.access(args.supervisorctl, os.X_OK)):
        notes.append("supervisord skipped: supervisord/supervisorctl not found")
        tools.remove("supervisord")
    if "pm2" in tools and not (args.pm2 and os.access(args.pm2, os.X_OK)):
        notes.append("pm2 skipped: `pm2` not on PATH (npm install -g pm2)")
        tools.remove("pm2")
    for n in notes:
        log(n)

    def stop_on_signal(signum, frame):
        raise SystemExit(f"interrupted by signal {signum}")
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)

    lst = Listener()
    raw = {t: {str(n): [] for n in sizes} for t in tools}
    started = time.monotonic()
    try:
        log(f"listening on 127.0.0.1:{lst.port}; sizes {sizes}, runs {args.runs}, tools {tools}")
        for n in sizes:
            for run in range(args.runs):
                for t in tools:  # interleaved, so drift hits every tool alike
                    if (t, None) in skip or (t, n) in skip:
                        continue
                    log(f"{t} N={n} run {run + 1}/{args.runs}")
                    r = run_one(t, n, lst, args)
                    raw[t][str(n)].append(r)
                    log("  " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in r.items() if k not in ("restart_ms",)))
    finally:
        lst.close()

    medians = {}
    for t in tools:
        medians[t] = {}
        for n in sizes:
            runs = raw[t][str(n)]
            if not runs:
                medians[t][str(n)] = {k: "skipped" for k, *_ in METRICS}
                continue
            m = {k: median_of(runs, k) for k, *_ in METRICS}
            m["start_cmd_s"] = median_of(runs, "start_cmd_s")
            m["stop_cmd_s"] = median_of(runs, "stop_cmd_s")
            m["runs"] = len(runs)
            m["failed_runs"] = sum(1 for r in runs if "error" in r or "timeout" in r.values())
            medians[t][str(n)] = m

    print(f"\nSide-by-side: medians of {args.runs} run(s); restart = p50 of up to {args.kills} kill -9 per run, "
          f"each victim once; wall time {time.monotonic() - started:.0f}s\n")
    print(table(medians, sizes, tools))
    for note in notes:
        print(f"\nNote: {note}")
    failed = [(t, n, m["failed_runs"]) for t in tools for n, m in medians[t].items() if m.get("failed_runs")]
    for t, n, k in failed:
        print(f"\nNote: {t} N={n}: {k} run(s) failed or timed out; medians use the successful runs")
    print("\nRaw medians (JSON):")
    print(json.dumps(medians, indent=2, sort_keys=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sizes": sizes, "runs": args.runs, "tools": tools, "notes": notes, "medians": medians,
                       "raw": raw}, f, indent=2, sort_keys=True)
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
