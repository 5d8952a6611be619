# Builds Passage from Debian 12 packages and runs `passage serve` (or, with another
# command, `passage replica`: same image, same port inside the container).
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ cmake make pkg-config ccache libgtest-dev libgmock-dev libbenchmark-dev \
      librocksdb-dev libboost-dev librdkafka-dev nlohmann-json3-dev libsimdjson-dev libssl-dev \
      libcli11-dev libspdlog-dev prometheus-cpp-dev libjemalloc-dev libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake --preset release -DPASSAGE_BUILD_TESTS=OFF -DPASSAGE_BUILD_BENCH=OFF \
    && cmake --build build/release -j"$(nproc)" --target passage

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librocksdb7.8 libsimdjson14 librdkafka1 libssl3 libspdlog1.10 libprometheus-cpp-core1.0 libjemalloc2 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/passage passage \
    && mkdir -p /var/lib/passage/data /var/lib/passage/replica \
    && chown -R passage /var/lib/passage
COPY --from=build /src/build/release/app/passage /usr/local/bin/passage
USER passage
WORKDIR /var/lib/passage
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["passage"]
CMD ["serve", "--data-dir", "/var/lib/passage/data", "--listen", "0.0.0.0:8080"]
