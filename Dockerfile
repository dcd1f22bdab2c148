# fleet: the stage worker, the ingress and the CLI in one image.
#
#   docker build -t fleet:latest .
#
# One image for every x86-64 machine: the build is portable, and each process picks its kernel
# variant at run time from cpuid (avx512 with VNNI, avx2, or scalar; FLEET_KERNELS forces one;
# docs/kernels.md). Every variant computes the same bits, so replicas of a stage may run on
# different CPUs; a worker still refuses to join a stage whose live replicas compute other
# numerics (another model.activations), which its start-up probe hash shows.

# ---- build ----
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config git ca-certificates \
      librdkafka-dev libprotobuf-dev protobuf-compiler libhiredis-dev libspdlog-dev libfmt-dev \
      libyaml-cpp-dev libopenblas-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev \
      libcli11-dev libcpp-httplib-dev libpcre2-dev libssl-dev zlib1g-dev libbrotli-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -G Ninja -S . -B /build -DCMAKE_BUILD_TYPE=Release \
    && targets="fleet fleet-stage" \
    && if ninja -C /build -t targets all | grep -q '^fleet-ingress:'; then targets="$targets fleet-ingress"; fi \
    && ninja -C /build $targets \
    && mkdir -p /out \
    && for t in $targets; do cp "$(find /build/services -type f -name "$t" -perm -u+x | head -n1)" /out/; done \
    && strip /out/*

# ---- run ----
FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka++1 librdkafka1 libprotobuf32 libhiredis0.14 libspdlog1.10 libfmt9 libyaml-cpp0.7 \
      libcpp-httplib0.11 libssl3 libpcre2-8-0 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /nonexistent fleet
COPY --from=build /out/ /usr/local/bin/
USER fleet
# fleet-stage --check validates a config and the model header without weights or network.
CMD ["fleet-stage", "--help"]
