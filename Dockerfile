# ml-serving container image: one static binary and the bundled model, FROM scratch.
#
# Two ways to get the binary into the same runtime stage (docs/docker.md):
#
#   online (default)  docker build -t ml-serving .
#       compiles it in the `builder` stage below (needs the rust image and crates.io).
#
#   offline           scripts/docker-build
#       compiles it on the host with the same static flags, puts it in dist/ml-serving and runs
#       DOCKER_BUILDKIT=1 docker build --build-arg BINARY_SOURCE=prebuilt -t ml-serving .
#       BuildKit builds only the stages the final one needs, so the rust image is never pulled.
#       The legacy builder builds every stage and so cannot do this offline.
#
# No `# syntax=` line on purpose: it would make BuildKit pull a frontend image.

# Where the binary comes from: `builder` (compile here) or `prebuilt` (dist/ml-serving).
ARG BINARY_SOURCE=builder
# The toolchain image for the online path; rust-toolchain.toml still pins the exact compiler.
ARG RUST_IMAGE=rust:1.95

# ---- online: compile a static (static-pie, glibc) binary ----------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
# Same flags as scripts/docker-build uses on the host: keep the two in step.
RUN RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --locked --target x86_64-unknown-linux-gnu --bin ml-serving \
    && mkdir -p /out \
    && cp target/x86_64-unknown-linux-gnu/release/ml-serving /out/ml-serving

# ---- offline: a binary built on the host by scripts/docker-build ---------------------------------
# Cargo.toml is always there, so this COPY succeeds (and this stage stays harmless) when dist/ is
# empty: the legacy builder builds this stage even on the online path.
FROM scratch AS prebuilt
COPY Cargo.toml dist/ml-servin[g] /out/

# ---- pick one of the two (an ARG cannot be used in COPY --from, but it can in FROM) ------------
FROM ${BINARY_SOURCE} AS binary

# ---- runtime: the only image anyone runs -------------------------------------------------------
FROM scratch AS runtime
LABEL org.opencontainers.image.title="ml-serving" \
      org.opencontainers.image.description="Breast-cancer classifier served over HTTP (static Rust binary, FROM scratch)" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"

COPY --from=binary /out/ml-serving /usr/local/bin/ml-serving
# Root-owned and so read-only for the server; it keeps its mode from the build context (0644 in git).
COPY model/model_binary.dat.gz /model/model_binary.dat.gz

# MODEL_NAME is deliberately left unset: the server then takes the name stored in the artifact
# ("breast_model" for the bundled one), so a model mounted over /model keeps its own name.
# Set it (-e MODEL_NAME=...) only to serve a model under another name.
ENV MODEL_PATH=/model/model_binary.dat.gz \
    HOST=0.0.0.0 \
    PORT=8000 \
    GRPC_PORT=8081

# Any non-root id works in an image with no /etc/passwd; 65532 is the usual "nonroot".
USER 65532:65532
# 8000: HTTP (/predict, V2 REST, /docs, /metrics); 8081: V2 gRPC and grpc.health.v1.Health.
EXPOSE 8000 8081

# No shell in the image, so the binary checks itself (GET /ready on 127.0.0.1:$PORT).
# Docker 20.10 has no --start-interval: the first check runs one interval after the start.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/ml-serving", "healthcheck"]

# SIGTERM (docker stop) makes the server drain and exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ml-serving"]
CMD ["serve"]
