# syntax=docker/dockerfile:1
# Multi-stage: build the release binary, then run it on a slim image as a non-root user.

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY migrations ./migrations
COPY src ./src
RUN cargo build --release --locked --bin simrenew

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 libssl3 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/simrenew --create-home simrenew
COPY --from=build /src/target/release/simrenew /usr/local/bin/simrenew
USER simrenew
WORKDIR /var/lib/simrenew
ENV SIMRENEW_BIND=0.0.0.0:8080 \
    SIMRENEW_LOG_FORMAT=json \
    DATABASE_URL=sqlite:///var/lib/simrenew/simrenew.db
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["simrenew"]
CMD ["serve"]
