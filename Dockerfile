# eventdash: producer, consumer and dashboard under one supervisord (PID 1).
# Kafka and ZooKeeper run in their own containers: see docker-compose.yml.

# 1. Browser libraries from npm, pinned by package-lock.json (nothing from a CDN).
FROM node:22-bookworm-slim AS browser-libs
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=dev

# 2. The aggregator's Rust hot path as a wheel: rustup's minimal toolchain (pinned, as the Makefile's),
#    crates from crates.io, maturin from PyPI. Only the wheel leaves this stage.
FROM python:3.11-slim AS native-build
ARG RUST_TOOLCHAIN=1.95.0
# hadolint ignore=DL3008
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends gcc libc6-dev curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN curl -sSfL https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init -o /tmp/rustup-init \
 && chmod +x /tmp/rustup-init \
 && /tmp/rustup-init -y --no-modify-path --profile minimal --default-toolchain "${RUST_TOOLCHAIN}" \
 && rm /tmp/rustup-init
ENV PATH=/root/.cargo/bin:$PATH
COPY native /build/native
RUN pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels /build/native

# 3. Python dependencies (pinned by requirements.txt; all binary wheels, no compiler needed) and the
#    eventdash package itself into a virtualenv: `python -m eventdash` and `eventdash` work anywhere.
FROM python:3.11-slim AS python-deps
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt
COPY pyproject.toml README.md /build/
COPY eventdash /build/eventdash
COPY --from=native-build /wheels /tmp/wheels
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /build /tmp/wheels/*.whl

# 4. The runtime image: no build tools, no node, a non-root user.
# EVENTDASH_METRICS_HOST=0.0.0.0: the producer's and consumer's /metrics (ports 9101, 9102) listen on the
# container's network so Prometheus in another container can scrape them; none of them is published.
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KAFKA_BOOTSTRAP_SERVERS=kafka:9092 \
    EVENTDASH_SUPERVISOR_SOCKET=/app/.run/supervisor.sock \
    EVENTDASH_WEB_ROOT=/app \
    EVENTDASH_METRICS_HOST=0.0.0.0
RUN groupadd --system --gid 10001 eventdash \
 && useradd --system --uid 10001 --gid eventdash --home-dir /app --shell /usr/sbin/nologin eventdash
COPY --from=python-deps /opt/venv /opt/venv
COPY --from=browser-libs /build/node_modules/socket.io-client/dist /app/node_modules/socket.io-client/dist
COPY --from=browser-libs /build/node_modules/uplot/dist /app/node_modules/uplot/dist
COPY templates /app/templates
COPY static /app/static
COPY deploy /app/deploy
RUN mkdir -p /app/.run && chown eventdash:eventdash /app/.run
USER eventdash
# supervisorctl finds ./supervisord.conf here, so `supervisorctl status` works as is.
WORKDIR /app/deploy
EXPOSE 5002
# Healthy = the whole pipeline works: Kafka reachable and every partition's statistics advancing
# (/readyz). Docker restarts nothing for "unhealthy", and supervisord restarts only the program
# that exited, so a stuck consumer shows here without restarting the dashboard.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:5002/readyz', timeout=3).status != 200)"]
CMD ["supervisord", "-c", "/app/deploy/supervisord.conf"]
