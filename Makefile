# Spool. `make help` lists the targets; `make run` and `make test` are the two a new user needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PYSRC := $(wildcard server tests bench clients/python)

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e clients/python -e '.[dev]'
	touch $@

install: $(BIN)/.installed ## create .venv and install the server, the client and the dev tools

run: $(BIN)/.installed ## serve on 127.0.0.1:50051 (embedded PostgreSQL unless SPOOL_DATABASE_URL is set)
	$(BIN)/spoold

test: check pytest ## every check, then every test

pytest: $(BIN)/.installed ## the Python test suite (SPOOL_TEST_DATABASE_URL, or an embedded PostgreSQL)
	$(BIN)/pytest

check: lint typecheck proto verify ## lint, types, buf lint/format/breaking, regenerate-and-diff

lint: $(BIN)/.installed ## ruff lint and format check
	$(BIN)/ruff check $(PYSRC)
	$(BIN)/ruff format --check $(PYSRC)

typecheck: $(BIN)/.installed ## mypy --strict on hand-written code
	$(BIN)/mypy server clients/python/spool

proto: $(BIN)/.installed ## buf lint, format and breaking against the committed baseline image
	$(BIN)/buf lint
	$(BIN)/buf format -d --exit-code
	$(BIN)/buf breaking --against proto/baseline.binpb

gen: $(BIN)/.installed ## regenerate the API stubs from proto/
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/buf generate

verify: gen ## regenerate and fail if the checked-in generated code differs
	@git add -N clients/python/spool/v1 >/dev/null 2>&1 || true
	git diff --exit-code -- clients/python/spool/v1

baseline: $(BIN)/.installed ## record the current API as the baseline for buf breaking (on a release)
	$(BIN)/buf build -o proto/baseline.binpb

bench: $(BIN)/.installed ## benchmarks against the database ceiling (bench/README.md)
	$(PY) -m bench.throughput

format: $(BIN)/.installed ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format $(PYSRC)
	$(BIN)/ruff check --fix $(PYSRC)

.PHONY: help install run test pytest check lint typecheck proto gen verify baseline bench format
