# The two commands: `make up` runs the all-in-one platform, `make test` the whole suite.
VENV ?= .venv
DOCKER_SOCK ?= unix:///run/titus/docker.sock
DATA_DIR ?= /var/lib/titus
export DOCKER_HOST := $(DOCKER_SOCK)

.PHONY: up test install engine zookeeper lint unit bench

install:
	@bash scripts/install.sh

engine:
	@bash scripts/docker-engine.sh >/dev/null

zookeeper:
	@bash scripts/zookeeper.sh >/dev/null

up: install engine
	TITUS_DATA_DIR=$(DATA_DIR) $(VENV)/bin/titus local

lint: install
	$(VENV)/bin/ruff check titus tests
	$(VENV)/bin/ruff format --check titus tests
	$(VENV)/bin/mypy titus

test: install engine zookeeper lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

unit: install
	$(VENV)/bin/pytest -q tests/unit

# The chaos suite's long form: minutes of load and faults per scenario, then all together.
.PHONY: chaos
chaos: install engine zookeeper
	TITUS_CHAOS=long $(VENV)/bin/pytest -q -p no:cacheprovider tests/chaos
