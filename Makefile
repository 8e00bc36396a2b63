# eventdash: `make dev` runs the product locally, `make test` runs every test.
# Both set up everything they need on a fresh machine (venv, pip, npm, Kafka jars).
# Prerequisites: Python 3.11+, Java 17+, Maven, Node.js with npm.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KAFKA_PORT ?= 9092
ZOOKEEPER_PORT ?= 2181

.PHONY: dev test test-fast bench setup system-deps browser-deps compose-plugin clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

.cache/kafka-3.9.2/.complete: devstack/pom.xml
	$(PY) -m devstack fetch

setup: $(VENV)/.installed node_modules/.installed
	$(MAKE) --no-print-directory .cache/kafka-3.9.2/.complete

dev: setup
	$(PY) -m devstack dev --kafka-port $(KAFKA_PORT) --zookeeper-port $(ZOOKEEPER_PORT)

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

# Full run → docs/BENCHMARKS.md (about 15 min); QUICK=1 → bench/results/BENCHMARKS-quick.md (< 3 min).
bench: setup
	$(PY) -m bench $(if $(QUICK),--quick --out bench/results/BENCHMARKS-quick.md,)

# System packages from Debian (needs root; .ci/run calls it): Java and Maven for the local
# Kafka, Node.js/npm for the browser libraries, Chromium for the browser tests.
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
system-deps: browser-deps compose-plugin
	@command -v java >/dev/null 2>&1 || (apt-get update -qq && $(APT_INSTALL) openjdk-17-jre-headless)
	@command -v mvn >/dev/null 2>&1 || (apt-get update -qq && $(APT_INSTALL) maven)
	@command -v npm >/dev/null 2>&1 || (apt-get update -qq && $(APT_INSTALL) nodejs npm)

browser-deps:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && $(APT_INSTALL) chromium)

# `docker compose` (v2) for the test that validates docker-compose.yml. Machines with only the
# docker client get the plugin built from its Go module (about 2 minutes, once).
COMPOSE_VERSION := v2.40.3
compose-plugin:
	@docker compose version >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1 || $(MAKE) --no-print-directory build-compose-plugin

build-compose-plugin:
	@command -v go >/dev/null 2>&1 || { echo "no Go toolchain: cannot build the docker compose plugin"; exit 1; }
	mkdir -p .cache/compose-build
	cd .cache/compose-build && { [ -f go.mod ] || go mod init eventdash-compose-build; } \
	  && go get github.com/docker/compose/v2/cmd@$(COMPOSE_VERSION) \
	  && go build -o docker-compose github.com/docker/compose/v2/cmd
	mkdir -p $(HOME)/.docker/cli-plugins
	cp .cache/compose-build/docker-compose $(HOME)/.docker/cli-plugins/docker-compose

clean:
	rm -rf .run .pytest_cache
