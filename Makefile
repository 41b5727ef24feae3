# Hub — `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
JS     := tests/js
NODE_STAMP := $(JS)/node_modules/.installed
WEB    := hub/web
VENDOR := $(WEB)/static/vendor/socket.io.esm.min.js
.PHONY: help run test lint format clean js web browser bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Hub needs Python 3.11+ (set PYTHON=...)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP) web ## Run the hub on embedded PostgreSQL and Redis with demo data (Ctrl-C stops all)
	$(BIN)/hub dev

# The JavaScript-client tests need Node; where it is missing they say so and skip.
$(NODE_STAMP): $(JS)/package.json $(JS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(JS) --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the JavaScript-client tests will be skipped"; fi

js: $(NODE_STAMP) ## Install the npm packages of the JavaScript-client tests

# The pages load the official Socket.IO client from the hub itself, never from a CDN: npm
# installs the pinned version and its browser build is copied next to the pages.
$(VENDOR): $(WEB)/package.json $(WEB)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(WEB) --no-audit --no-fund --loglevel=error \
		&& mkdir -p $(dir $(VENDOR)) \
		&& cp $(WEB)/node_modules/socket.io-client/dist/socket.io.esm.min.js $(VENDOR); \
	else echo "npm not found: the web pages cannot load the Socket.IO client (install Node.js, then make web)"; fi

web: $(VENDOR) ## Install the web pages' browser assets (the pinned Socket.IO client)

# The browser tests drive Debian's Chromium; as root (CI) it is installed where missing.
browser: ## Install Debian's Chromium for the browser tests, where it is missing
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's chromium for the browser tests"; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends chromium; } >/dev/null 2>&1 \
				|| echo "could not install chromium: the browser tests will skip"; \
		else echo "chromium not found (apt-get install chromium as root): the browser tests will skip"; fi; \
	fi

test: $(STAMP) js web browser ## Run lint and the whole test suite on real PostgreSQL and Redis
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP) ## Run every benchmark scenario with its peers and write docs/benchmarks.md
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.all

lint: $(STAMP) ## Lint and type-check (ruff, mypy)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## Remove the virtualenv and the embedded data under .hub/
	rm -rf $(VENV) .hub .pytest_cache .mypy_cache .ruff_cache test-artifacts $(WEB)/node_modules $(WEB)/static/vendor
