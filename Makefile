# The two commands a newcomer needs: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test install lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/cryptobot up

# The same checks run as pre-commit hooks (.pre-commit-config.yaml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy cryptobot_core cryptobot_assets cryptobot_api dashboard
	$(BIN)/lint-imports

test: install lint browser-deps postgres-deps
	$(BIN)/pytest

# Debian's Chromium for the dashboard's browser test (Playwright never downloads a browser).
.PHONY: browser-deps
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium; \
	fi

# Debian's PostgreSQL for the production Dagster topology test (Postgres run storage).
.PHONY: postgres-deps
postgres-deps:
	@if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends postgresql; \
	fi

clean:
	rm -rf $(VENV) .cryptobot .pytest_cache .mypy_cache .ruff_cache
