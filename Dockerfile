# The zeppelin image: `docker build -t zeppelin:0.1.0 .`
# The first stage builds the binary with the same Debian packages as
# scripts/setup.sh; the runtime stage holds only the binary and the shared
# libraries it links, and runs as an unprivileged user (65532).
# `zeppelin render --target kubernetes --self -n NAMESPACE` runs it in a cluster.

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake ninja-build g++ pkg-config \
      libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libboost-dev libspdlog-dev libfmt-dev libarchive-dev \
      libsqlite3-dev libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libssl-dev \
      libgoogle-perftools-dev libnghttp2-dev libacl1-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY src ./src
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DZEPPELIN_BUILD_TESTS=OFF -DZEPPELIN_BUILD_BENCH=OFF \
 && ninja -C /build zeppelin \
 && strip /build/zeppelin

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libyaml-cpp0.7 libgrpc++1.51 libprotobuf32 libsqlite3-0 libarchive13 libssl3 libspdlog1.10 libfmt9 libtcmalloc-minimal4 \
      libnghttp2-14 libacl1 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 65532 --home-dir /var/lib/zeppelin --create-home zeppelin
COPY --from=build /build/zeppelin /usr/local/bin/zeppelin
USER 65532:65532
ENV ZEPPELIN_HOME=/var/lib/zeppelin
VOLUME /var/lib/zeppelin
EXPOSE 7380 2379
ENTRYPOINT ["/usr/local/bin/zeppelin"]
CMD ["server", "--listen", "0.0.0.0:7380", "--etcd-listen", "0.0.0.0:2379"]
