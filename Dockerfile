# fleet: the stage worker, the ingress and the CLI in one image.
#
#   docker build -t fleet:latest .                       # portable: runs on any x86-64
#   docker build -t fleet:v3 --build-arg FLEET_MARCH=x86-64-v3 .   # AVX2+FMA kernels (Haswell+)
#   docker build -t fleet:v4 --build-arg FLEET_MARCH=x86-64-v4 .   # AVX-512 kernels
#
# Kernels are chosen at compile time (engine/matmul.h kernel_variant(): avx512, avx2-fma,
# scalar), so the image is built for a baseline -march instead of -march=native
# (FLEET_NATIVE=OFF): the default x86-64 baseline runs anywhere, with the scalar kernels.
# Replicas of one stage must run the same kernels (a worker refuses to join a stage whose live
# replicas run others), so build every worker of a stage from the same image.

# ---- build ----
FROM debian:12 AS build
ARG FLEET_MARCH=x86-64
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config git ca-certificates \
      librdkafka-dev libprotobuf-dev protobuf-compiler libhiredis-dev libspdlog-dev libfmt-dev \
      libyaml-cpp-dev libopenblas-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev \
      libcli11-dev libcpp-httplib-dev libpcre2-dev libssl-dev zlib1g-dev libbrotli-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -G Ninja -S . -B /build -DCMAKE_BUILD_TYPE=Release -DFLEET_NATIVE=OFF \
      -DCMAKE_CXX_FLAGS="-march=${FLEET_MARCH}" -DCMAKE_C_FLAGS="-march=${FLEET_MARCH}" \
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
