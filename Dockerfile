# syntax=docker/dockerfile:1
# SE-SLM serving node / evolution job image: Debian 12, built in one stage, run as a non-root user in a
# second stage that holds only the installed program, its shared libraries and their runtime packages.
#   docker build -t seslm:0.1.0 .
#   docker run --rm -p 8080:8080 -v $PWD/models/all-MiniLM-L6-v2:/models/live:ro seslm:0.1.0
# The model is not in the image: mount it at /models/live (deploy/k8s fetches it from the registry).

FROM debian:12-slim AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config python3 \
      libutf8proc-dev libcjson-dev libopenblas-openmp-dev liblapacke-dev libssl-dev libmicrohttpd-dev \
      libhdf5-dev libyaml-dev libsqlite3-dev libpq-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY kernels kernels
COPY runtime runtime
COPY pipeline pipeline
COPY docs/man docs/man
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSESLM_CUDA=OFF -DSESLM_BUILD_TESTS=OFF \
 && cmake --build build -j"$(nproc)" \
 && cmake --install build --prefix /opt/seslm --component runtime

FROM debian:12-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libutf8proc2 libcjson1 libopenblas0-openmp \
      liblapacke libssl3 libmicrohttpd12 libhdf5-103-1 libyaml-0-2 libsqlite3-0 libpq5 libcurl4 libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/seslm --create-home --shell /usr/sbin/nologin seslm
COPY --from=build /opt/seslm /opt/seslm
COPY configs /opt/seslm/share/seslm/configs
ENV PATH=/opt/seslm/bin:$PATH \
    SESLM_MODEL_DIR=/models/live
USER 10001:10001
WORKDIR /var/lib/seslm
EXPOSE 8080
ENTRYPOINT ["seslm"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
