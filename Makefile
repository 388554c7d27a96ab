# LineSight. `make demo` and `make test` are all a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000
# One worker process per core, each with LINESIGHT_INFERENCE_THREADS (1) inference threads.
WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv demo test lint format serve worker clean-demo help

help:
	@echo "make demo    install, load the demo plant and model, serve on http://$(HOST):$(PORT)"
	@echo "make test    the whole test suite"
	@echo "make lint    ruff and the migrations check, as CI runs them"
	@echo "make serve   production server: $(WORKERS) ASGI workers (see README, Deployment)"
	@echo "make worker  the background workers, one per queue group (validation and exports; imports; evaluations and training)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

var/secret_key:
	mkdir -p var
	$(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))" > $@
	chmod 600 $@

demo: venv var/secret_key
	LINESIGHT_SECRET_KEY="$$(cat var/secret_key)" $(BIN)/python manage.py demo --host $(HOST) --port $(PORT)

test: venv
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	mkdir -p var
	LINESIGHT_DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

serve: venv
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/uvicorn config.asgi:application --host $(HOST) --port $(PORT) --workers $(WORKERS) \
		--no-access-log --proxy-headers --timeout-graceful-shutdown 20

worker: venv
	$(BIN)/python manage.py run_workers

clean-demo:
	rm -rf var/
