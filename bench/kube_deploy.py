#!/usr/bin/env python3
"""Times `zeppelin deploy --target kubernetes --no-wait` of a 50-service system
against the fake apiserver of the e2e tests (tests/e2e/fake_kube_apiserver.py;
a FAKE, since no real apiserver runs here) over TLS with a client certificate.

- create: a fresh fake each run, so every object is created (201) and prune
  lists every kind;
- re-apply: the same system applied again (200, no change).

Also printed: the CPU time of the zeppelin process itself (user + system),
which separates the client's cost from the fake's. The time is the whole command: kubeconfig, spec parse, render, TLS handshake,
one PATCH per object on one kept-alive connection, and the prune lists. The
fake (Python) answers every request; its share is part of the figure.

Usage: bench/kube_deploy.py [--runs N] [--services N]   (ZEPPELIN_BIN or build/zeppelin)
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from fake_kube_apiserver import FakeKubeApiServer  # noqa: E402
from test_kubernetes_deploy import make_pki  # noqa: E402

BIN = os.environ.get("ZEPPELIN_BIN") or os.path.join(HERE, "..", "build", "zeppelin")


def spec(n):
    lines = ["name: big", "services:"]
    for i in range(n):
        lines.append(f"  s{i}:")
        lines.append(f"    image: registry.example/big/s{i}:1.0")
        lines.append(f"    ports: [{{name: http, port: {8000 + i}}}]")
        lines.append("    env: {MODE: prod, LEVEL: info}")
        if i % 3 == 0:
            lines.append("    mode: stateful")
            lines.append("    volumes: [{name: data, path: /data, size: 2Gi}]")
        if i:
            lines.append(f"    depends_on: [s{i - 1}]")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--services", type=int, default=50)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="zeppelin-kube-bench-")
    try:
        make_pki(d)
        spec_file = os.path.join(d, "zeppelin.yaml")
        with open(spec_file, "w") as f:
            f.write(spec(args.services))
        p = lambda n: os.path.join(d, n)  # noqa: E731

        def run(fake):
            kubeconfig = p("kubeconfig")
            with open(kubeconfig, "w") as f:
                f.write(textwrap.dedent(f"""\
                    current-context: fake
                    clusters: [{{name: fake, cluster: {{server: "{fake.url}", certificate-authority: "{p('ca.crt')}"}}}}]
                    users: [{{name: alice, user: {{client-certificate: "{p('client.crt')}", client-key: "{p('client.key')}"}}}}]
                    contexts: [{{name: fake, context: {{cluster: fake, user: alice, namespace: bench}}}}]
                    """))
            env = dict(os.environ, KUBECONFIG=kubeconfig)
            cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            r = subprocess.run([BIN, "deploy", "--target", "kubernetes", spec_file, "--no-wait"], env=env,
                               capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime)
            if r.returncode != 0:
                sys.exit(f"deploy failed: {r.stderr}")
            return elapsed, r.stdout.count("\n")

        creates, reapplies, cpu = [], [], []
        objects = 0
        for _ in range(args.runs):
            fake = FakeKubeApiServer(p("server.crt"), p("server.key"), p("ca.crt"), namespaces=("bench",)).start()
            try:
                t, objects = run(fake)
                creates.append(t)
                reapplies.append(run(fake)[0])
            finally:
                fake.stop()
        print(f"{args.services} services, {objects} objects, {args.runs} runs")
        print(f"create:   median {statistics.median(creates) * 1000:.0f} ms "
              f"(min {min(creates) * 1000:.0f}, max {max(creates) * 1000:.0f})")
        print(f"zeppelin's own CPU time per deploy: median {statistics.median(cpu) * 1000:.0f} ms")
        print(f"re-apply: median {statistics.median(reapplies) * 1000:.0f} ms "
              f"(min {min(reapplies) * 1000:.0f}, max {max(reapplies) * 1000:.0f})")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
