# syntax=docker/dockerfile:1
# Multi-stage: build the release binary with nothing but the Rust toolchain, a C compiler,
# perl and make (libpq and OpenSSL are built from source, TLS to partners is rustls), then
# run it on distroless/cc: glibc and CA certificates only, no shell, no package manager,
# as the non-root user 65532. ci/operations checks the runtime stage's premise without
# an engine: the binary needs no library beyond glibc's and serves from a root
# filesystem that has no shell (see README, Docker).

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends make perl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY migrations ./migrations
COPY src ./src
RUN cargo build --release --locked --bin simrenew \
 && mkdir -p /out/data \
 && cp target/release/simrenew /out/simrenew

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/simrenew /usr/local/bin/simrenew
# A writable directory for the default SQLite database; with PostgreSQL (DATABASE_URL)
# nothing is written to disk and the root filesystem can be read-only.
COPY --from=build --chown=65532:65532 /out/data /var/lib/simrenew
USER 65532:65532
WORKDIR /var/lib/simrenew
ENV SIMRENEW_BIND=0.0.0.0:8080 \
    SIMRENEW_LOG_FORMAT=json \
    DATABASE_URL=sqlite:///var/lib/simrenew/simrenew.db
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["simrenew", "healthcheck"]
ENTRYPOINT ["simrenew"]
CMD ["serve"]
