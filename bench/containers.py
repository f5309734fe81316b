#!/usr/bin/env python3
"""Side-by-side benchmark: zeppelin vs docker-compose, driving the same engine.

Starts a private dockerd (as the tests do: tests/e2e/docker_engine.py) with a
busybox test image, then for each N in --sizes and each tool runs N replicas
of the same container (`sleep`, host network, init) and measures:

  up        time from issuing the command (`zeppelin run -d`,
            `docker-compose up -d --scale`) until the engine lists N running
            containers of it (polled every 10 ms through the engine's API)
  command   wall time of that command itself (zeppelin's `run -d` also waits
            for its readiness check, including 0.5 s of settle time for
            replicas without a health check)
  down      time from issuing `zeppelin stop` / `docker-compose down` until the
            engine lists none of its containers

Each (tool, N) is repeated --runs times; the table shows medians. Python 3
standard library only. Needs root (dockerd). See bench/README.md.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from docker_engine import TEST_IMAGE, DockerEngine  # noqa: E402

COMMAND = ["sh", "-c", "exec sleep 100000"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def running(engine, label):
    return sum(1 for c in engine.containers(label=label) if c["State"] == "running")


def existing(engine, label):
    return len(engine.containers(label=label))


def timed(cmd, env, cwd, until, timeout=300):
    """Runs cmd; returns (seconds until `until()` held, seconds the command took)."""
    started = time.monotonic()
    result = {}

    def run():
        r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        result["took"] = time.monotonic() - started
        result["rc"], result["err"] = r.returncode, r.stderr

    thread = threading.Thread(target=run)
    thread.start()
    reached = None
    while time.monotonic() - started < timeout:
        if until():
            reached = time.monotonic() - started
            break
        time.sleep(0.01)
    thread.join()
    if result.get("rc") != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.get('err', '')[-2000:]}")
    return reached, result["took"]


def bench_zeppelin(engine, binary, n, work):
    home = os.path.join(work, "zhome")
    env = dict(os.environ, ZEPPELIN_HOME=home, DOCKER_HOST=engine.host)
    spec = os.path.join(work, "zeppelin.yaml")
    with open(spec, "w") as f:
        f.write(f"name: zbench\nservices:\n  web:\n    image: {TEST_IMAGE}\n"
                f"    command: {json.dumps(COMMAND)}\n    replicas: {n}\n")
    label = f"io.zeppelin.home={home}"
    try:
        subprocess.run([binary, "shutdown"], env=env, capture_output=True)
        subprocess.run([binary, "server", "-d"], env=env, capture_output=True, check=True)  # server up before timing
        up, command = timed([binary, "run", "-d", "-f", spec], env, work, lambda: running(engine, label) == n)
        down, _ = timed([binary, "stop", "zbench"], env, work, lambda: existing(engine, label) == 0)
        subprocess.run([binary, "down", "zbench"], env=env, capture_output=True)
        return {"up": up, "command": command, "down": down}
    finally:
        subprocess.run([binary, "shutdown"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def bench_compose(engine, compose, n, work):
    env = dict(os.environ, DOCKER_HOST=engine.host, COMPOSE_PROJECT_NAME="cbench")
    with open(os.path.join(work, "docker-compose.yml"), "w") as f:
        f.write(f"version: '2.4'\nservices:\n  web:\n    image: {TEST_IMAGE}\n"
                f"    command: {json.dumps(COMMAND)}\n    network_mode: host\n    init: true\n")
    label = "com.docker.compose.project=cbench"
    try:
        up, command = timed([compose, "up", "-d", "--scale", f"web={n}"], env, work,
                            lambda: running(engine, label) == n)
        down, _ = timed([compose, "down"], env, work, lambda: existing(engine, label) == 0)
        return {"up": up, "command": command, "down": down}
    finally:
        subprocess.run([compose, "down"], env=env, cwd=work, capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zeppelin", default=str(REPO / "build" / "zeppelin"))
    ap.add_argument("--compose", default=shutil.which("docker-compose") or "docker-compose")
    ap.add_argument("--sizes", default="10,50")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    args.zeppelin = os.path.abspath(args.zeppelin)

    engine = DockerEngine().start()
    work = tempfile.mkdtemp(prefix="cbench-")
    results = {}
    try:
        engine.import_busybox()
        for n in sizes:
            for tool, fn, exe in (("zeppelin", bench_zeppelin, args.zeppelin), ("compose", bench_compose, args.compose)):
                runs = []
                for i in range(args.runs):
                    r = fn(engine, exe, n, work)
                    log(f"{tool} N={n} run {i + 1}: up {r['up']:.2f}s (command {r['command']:.2f}s), down {r['down']:.2f}s")
                    runs.append(r)
                results[(tool, n)] = {k: statistics.median(r[k] for r in runs) for k in ("up", "command", "down")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
        engine.stop()

    rows = [("up", "all N running (s)"), ("command", "up command returned (s)"), ("down", "all N removed (s)")]
    print("| metric | N | zeppelin | docker-compose | compose/zeppelin |")
    print("|---|---:|---:|---:|---:|")
    for key, label in rows:
        for n in sizes:
            z, c = results[("zeppelin", n)][key], results[("compose", n)][key]
            print(f"| {label} | {n} | {z:.2f} | {c:.2f} | {c / z:.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{t}/{n}": v for (t, n), v in results.items()}, f, indent=2)


if __name__ == "__main__":
    main()
