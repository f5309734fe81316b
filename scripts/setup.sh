#!/usr/bin/env bash
# Installs what building and testing Zeppelin needs from Debian's packages.
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config ccache
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libboost-dev libspdlog-dev libfmt-dev libarchive-dev
  libsqlite3-dev libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libssl-dev
  libgoogle-perftools-dev libnghttp2-dev libacl1-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev python3 etcd-server etcd-client
  # Kubernetes client tests: the openssl CLI makes their CA and certificates
  openssl
  # container tests: a real engine, a test image made from busybox, Compose for the side-by-side bench
  docker.io busybox-static docker-compose
  # fuzzing (clang's libFuzzer)
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
