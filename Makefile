# eventdash: `make dev` runs the product locally, `make test` runs every test.
# Both set up everything they need on a fresh machine (venv, pip, npm, Kafka jars).
# Prerequisites: Python 3.11+, Java 17+, Maven, Node.js with npm.

PYTHON ?= python3
VENV := .venv
# rustup installs cargo here (make system-deps); Debian 12's own cargo is too old for PyO3
export PATH := $(HOME)/.cargo/bin:$(PATH)
PY := $(VENV)/bin/python
KAFKA_PORT ?= 9092
ZOOKEEPER_PORT ?= 2181

.PHONY: dev test test-fast test-container screenshot bench setup system-deps browser-deps docker-deps compose-plugin rust-toolchain clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

.cache/kafka-3.9.2/.complete: devstack/pom.xml
	$(PY) -m devstack fetch

# The aggregator's Rust hot path (native/, PyO3 through maturin, crates from crates.io). Without
# cargo the consumer runs the pure-Python reference engine, which computes the same statistics.
$(VENV)/.native: $(VENV)/.installed native/Cargo.toml native/Cargo.lock native/pyproject.toml native/src/lib.rs
	@if command -v cargo >/dev/null 2>&1; then \
	  echo "building eventdash_native (Rust; about 1 minute the first time)"; \
	  $(PY) -m pip install --quiet ./native && touch $@; \
	else \
	  echo "cargo not found: the consumer will use the pure-Python engine (make system-deps installs Rust)"; \
	fi

setup: $(VENV)/.installed node_modules/.installed
	$(MAKE) --no-print-directory .cache/kafka-3.9.2/.complete $(VENV)/.native

dev: setup
	$(PY) -m devstack dev --kafka-port $(KAFKA_PORT) --zookeeper-port $(ZOOKEEPER_PORT)

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

# `docker compose up` on a real Docker engine (root; started and stopped here if none runs). Base
# images that can be neither found nor pulled are built locally by ../shared/container-standins/.
test-container: setup
	$(PY) -m pytest --container tests/container

# A fresh docs/dashboard.png from a stack that has run for minutes (Chromium; about 4 minutes).
screenshot: setup
	$(PY) -m devstack screenshot --out docs/dashboard.png

# Full run → docs/BENCHMARKS.md (about 15 min); QUICK=1 → bench/results/BENCHMARKS-quick.md (< 3 min).
bench: setup
	$(PY) -m bench $(if $(QUICK),--quick --out bench/results/BENCHMARKS-quick.md,)

# System packages from Debian (needs root; .ci/run calls it) for what a bare Debian lacks: python3-venv,
# a Java runtime and Maven for the local Kafka, Node.js/npm for the browser libraries, Chromium for
# the browser tests, Go for the benchmarks' load clients (bench/loadclients), and the Docker engine and
# client (with the compose plugin) for the container test.
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
system-deps: browser-deps docker-deps compose-plugin rust-toolchain
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || (apt-get update -qq && $(APT_INSTALL) python3-venv python3-pip)
	@command -v java >/dev/null 2>&1 || (apt-get update -qq && ($(APT_INSTALL) openjdk-17-jre-headless || $(APT_INSTALL) default-jre-headless))
	@command -v mvn >/dev/null 2>&1 || (apt-get update -qq && $(APT_INSTALL) maven)
	@command -v npm >/dev/null 2>&1 || (apt-get update -qq && $(APT_INSTALL) nodejs npm)
	@command -v go >/dev/null 2>&1 || (apt-get update -qq && $(APT_INSTALL) golang-go ca-certificates)

# docker.io brings docker-init (tini); apparmor lets Debian's engine start containers where the
# kernel has AppArmor on; debootstrap builds the base-image stand-ins where no registry answers.
docker-deps:
	@command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 || (apt-get update -qq && $(APT_INSTALL) docker.io apparmor ca-certificates)
	@command -v debootstrap >/dev/null 2>&1 || (apt-get update -qq && $(APT_INSTALL) debootstrap)

# Rust for the native engine: rustup's minimal profile from static.rust-lang.org, pinned (Debian 12's
# rustc 1.63 is too old for PyO3); gcc is its linker.
RUST_TOOLCHAIN := 1.95.0
rust-toolchain:
	@command -v cc >/dev/null 2>&1 || (apt-get update -qq && $(APT_INSTALL) gcc libc6-dev)
	@command -v cargo >/dev/null 2>&1 || (command -v curl >/dev/null 2>&1 || (apt-get update -qq && $(APT_INSTALL) curl ca-certificates); \
	  curl -sSfL https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init -o /tmp/rustup-init \
	  && chmod +x /tmp/rustup-init && /tmp/rustup-init -y --no-modify-path --profile minimal --default-toolchain $(RUST_TOOLCHAIN))

browser-deps:
	@[ -x /usr/bin/chromium ] || (apt-get update -qq && $(APT_INSTALL) chromium)

# `docker compose` (v2) for the test that validates docker-compose.yml. Machines with only the
# docker client get the plugin built from its Go module (about 2 minutes, once).
COMPOSE_VERSION := v2.40.3
compose-plugin: docker-deps
	@docker compose version >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1 || $(MAKE) --no-print-directory build-compose-plugin

# Compose needs a newer Go than Debian 12's golang-go (1.19): that one fetches the official toolchain
# module from the Go module proxy (as GOTOOLCHAIN does in newer Go).
GO_TOOLCHAIN := go1.24.11
build-compose-plugin:
	@command -v go >/dev/null 2>&1 || (apt-get update -qq && $(APT_INSTALL) golang-go ca-certificates)
	mkdir -p .cache/compose-build
	GO=$$(bash devstack/go-toolchain.sh $(GO_TOOLCHAIN)) \
	  && cd .cache/compose-build && { [ -f go.mod ] || $$GO mod init eventdash-compose-build; } \
	  && $$GO get github.com/docker/compose/v2/cmd@$(COMPOSE_VERSION) \
	  && $$GO build -o docker-compose github.com/docker/compose/v2/cmd
	mkdir -p /usr/local/lib/docker/cli-plugins
	cp .cache/compose-build/docker-compose /usr/local/lib/docker/cli-plugins/docker-compose

clean:
	rm -rf .run .pytest_cache
