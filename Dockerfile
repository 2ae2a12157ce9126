# The one image every Inland service runs from (`inland <service>`), as the Helm chart
# expects: /usr/local/bin/inland on a glibc base, numeric non-root user 65532.
#
#   docker build -t registry.example/inland/inland:0.1.0 .
#
# ONNX Runtime and the anonymizer's models are not baked in: they come from PyPI wheels
# (scripts/fetch-models.sh) and are mounted at run time (see helm/inland/README.md).

FROM rust:1.95-bookworm AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      cmake pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p inland-cli \
 && cp target/release/inland /inland

# distroless/cc: glibc, libssl and libstdc++ (ONNX Runtime needs it), CA certificates,
# no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /inland /usr/local/bin/inland
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/inland"]
CMD ["--help"]
