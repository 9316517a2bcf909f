# syntax=docker/dockerfile:1
#
# The init-container image: one static `skillport` binary (musl), the CA certificates, and
# the non-root user 65532 — nothing else (no shell, no package manager, no libc). It runs
# `skillport fetch --plan /etc/skillport/plan.json --into /skills` under a read-only root
# file system; only --into must be writable (docs/fetch.md).
#
#   docker build -t skillport:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/skillport:TAG --push .
#
# Each platform is compiled natively in its own build stage (under emulation when the builder
# is another architecture), for <arch>-unknown-linux-musl. ring and zstd have C parts, hence
# musl-tools (musl-gcc).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN target="$(uname -m)-unknown-linux-musl" \
 && rustup target add "$target" \
 && CC="musl-gcc" cargo build --release --locked -p skillport --target "$target" \
 && install -D -m 0755 "target/$target/release/skillport" /out/skillport

# distroless "static": CA certificates (/etc/ssl/certs), /etc/passwd with nonroot (65532),
# tzdata; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/skillport /usr/local/bin/skillport
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/skillport"]
CMD ["fetch", "--plan", "/etc/skillport/plan.json", "--into", "/skills"]
