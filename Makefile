# Hub — `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
JS     := tests/js
NODE_STAMP := $(JS)/node_modules/.installed
.PHONY: help run test lint format clean js bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Hub needs Python 3.11+ (set PYTHON=...)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP) ## Run the hub on embedded PostgreSQL and Redis with demo data (Ctrl-C stops all)
	$(BIN)/hub dev

# The JavaScript-client tests need Node; where it is missing they say so and skip.
$(NODE_STAMP): $(JS)/package.json $(JS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(JS) --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the JavaScript-client tests will be skipped"; fi

js: $(NODE_STAMP) ## Install the npm packages of the JavaScript-client tests

test: $(STAMP) js ## Run lint and the whole test suite on real PostgreSQL and Redis
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP) ## Run every benchmark scenario with its peers and write docs/benchmarks.md
	$(BIN)/python -m bench.all

lint: $(STAMP) ## Lint and type-check (ruff, mypy)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## Remove the virtualenv and the embedded data under .hub/
	rm -rf $(VENV) .hub .pytest_cache .mypy_cache .ruff_cache
