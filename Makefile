# Moneta: `make run` starts it on embedded defaults, `make test` runs the whole gate.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# The first Python >= 3.11 on PATH.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	  command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  && { echo $$p; break; }; done)

.PHONY: install run test check lint format bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Moneta needs Python 3.11 or newer on PATH"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade "pip==25.3"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## Start Moneta (API + worker) on an embedded PostgreSQL in ./.moneta; prints URL and admin key.
run: install
	$(BIN)/moneta dev

## Lint, type-check and run the whole test suite against real services it starts itself,
## the Helm chart included (helm and kubeconform are built once into .services/tools).
test: install lint deploy-tools
	MONETA_DEPLOY_CHECK=1 $(BIN)/python -m pytest

check: test

lint: install
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src

format: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

## The long benchmark (see bench/README.md).
bench: install
	$(BIN)/python -m pytest -m slow -p no:randomly -q bench

clean:
	rm -rf $(VENV) .moneta .pytest_cache .mypy_cache .ruff_cache .hypothesis

## Helm chart: helm lint, helm template | kubeconform -strict (offline schemas), plus every
## other deployment check; the pinned tools are built once into .services/tools.
.PHONY: deploy-check deploy-tools
deploy-check: install deploy-tools
	MONETA_DEPLOY_CHECK=1 $(BIN)/python -m pytest tests/test_deploy.py

# Quiet unless a build fails (a cold helm build prints hundreds of "go: downloading").
deploy-tools:
	@mkdir -p .services
	@for tool in helm kubeconform k8s-schemas; do \
	  echo "deploy tools: $$tool"; \
	  bash scripts/tools/install.sh $$tool >.services/install-$$tool.log 2>&1 \
	    || { cat .services/install-$$tool.log; exit 1; }; \
	done
