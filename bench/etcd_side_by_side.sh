#!/usr/bin/env bash
# Runs bench/etcd_api_bench against zeppelin's etcd API and a real etcd
# (Debian's etcd-server) on the same machine and the same disk ($TMPDIR),
# each with its default durability (an fsync before every acknowledgement).
# Usage: bench/etcd_side_by_side.sh [BUILD_DIR] [benchmark flags...]
# ETCD_BENCH_PIN=1 puts both servers on CPU 0 and the benchmark on CPU 1, as
# if the clients ran on another machine (each server then has one core).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
shift || true
dir="$(mktemp -d)"
cleanup() {
  [ -n "${zpid:-}" ] && kill "$zpid" 2>/dev/null && wait "$zpid" 2>/dev/null || true
  [ -n "${epid:-}" ] && kill "$epid" 2>/dev/null && wait "$epid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
server_cpu=() client_cpu=()
if [ "${ETCD_BENCH_PIN:-0}" = 1 ]; then
  server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
fi
"${server_cpu[@]}" etcd --name bench --data-dir "$dir/etcd" --listen-client-urls http://127.0.0.1:23790 \
  --advertise-client-urls http://127.0.0.1:23790 --listen-peer-urls http://127.0.0.1:23800 \
  --initial-advertise-peer-urls http://127.0.0.1:23800 --initial-cluster bench=http://127.0.0.1:23800 \
  >"$dir/etcd.log" 2>&1 &
epid=$!
# Auth off on both, like for like: etcd starts without it (auth's cost is a token lookup per call).
"${server_cpu[@]}" "$build/zeppelin" server --home "$dir/zeppelin" --etcd-listen 127.0.0.1:23791 --insecure-store \
  >"$dir/zeppelin.log" 2>&1 &
zpid=$!
for endpoint in 127.0.0.1:23790 127.0.0.1:23791; do
  for _ in $(seq 100); do
    ETCDCTL_API=3 etcdctl --endpoints "$endpoint" endpoint status >/dev/null 2>&1 && break
    sleep 0.1
  done
done
ETCD_BENCH_ENDPOINTS="zeppelin=127.0.0.1:23791,etcd=127.0.0.1:23790" ETCD_BENCH_PIDS="zeppelin=$zpid,etcd=$epid" \
  "${client_cpu[@]}" "$build/bench/etcd_api_bench" "$@"
