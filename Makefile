# eventdash: `make dev` runs the product locally, `make test` runs every test.
# Both set up everything they need on a fresh machine (venv, pip, npm, Kafka jars).
# Prerequisites: Python 3.11+, Java 17+, Maven, Node.js with npm.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KAFKA_PORT ?= 9092
ZOOKEEPER_PORT ?= 2181

.PHONY: dev test test-fast bench setup browser-deps clean

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

bench: setup
	$(PY) -m bench $(if $(QUICK),--quick,)

# Debian's Chromium for the browser tests (.ci/run calls this; needs root).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

clean:
	rm -rf .run .pytest_cache
