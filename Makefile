# The two commands: `make up` runs the all-in-one platform, `make test` the whole suite.
VENV ?= .venv
DOCKER_SOCK ?= unix:///run/titus/docker.sock
DATA_DIR ?= /var/lib/titus
export DOCKER_HOST := $(DOCKER_SOCK)

.PHONY: up test install engine zookeeper lint unit integration e2e bench

install:
	@bash scripts/install.sh

engine:
	@bash scripts/docker-engine.sh >/dev/null

zookeeper:
	@bash scripts/zookeeper.sh >/dev/null

up: install engine
	TITUS_DATA_DIR=$(DATA_DIR) \
	TITUS_AGENT_NETWORK_PROVIDER=$${TITUS_AGENT_NETWORK_PROVIDER:-local} \
	$(VENV)/bin/titus local

lint: install
	$(VENV)/bin/ruff check titus tests
	$(VENV)/bin/ruff format --check titus tests
	$(VENV)/bin/mypy titus

test: install engine zookeeper lint
	$(VENV)/bin/pytest -q -p no:cacheprovider --durations=30

# One part of the suite (tests/README.md says what each holds and needs).
unit: install
	$(VENV)/bin/pytest -q tests/unit

integration: install engine zookeeper
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/integration

e2e: install engine zookeeper
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/e2e

# The chaos suite's long form: minutes of load and faults per scenario, then all together.
.PHONY: chaos
chaos: install engine zookeeper
	TITUS_CHAOS=long $(VENV)/bin/pytest -q -p no:cacheprovider tests/chaos
