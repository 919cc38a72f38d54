# Spool. `make help` lists the targets; `make run` and `make test` are the two a new user needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PYSRC := $(wildcard server tests bench clients/python)
NODE := clients/node
NODE_STAMP := $(NODE)/node_modules/.package-lock.json

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e 'clients/python[cli]' -e '.[dev]'
	touch $@
	@echo "installed; the spool command is $(BIN)/spool (or: source $(BIN)/activate, then spool)"

install: $(BIN)/.installed node-install ## create .venv and install the server, the clients and the dev tools

run: $(BIN)/.installed ## serve on 127.0.0.1:50051 (embedded PostgreSQL unless SPOOL_DATABASE_URL is set)
	@echo "spool command: $(BIN)/spool --help (or: source $(BIN)/activate, then spool)"
	@$(BIN)/spoold

test: check pytest node-test promtool chaos ## every check, then every test (the chaos suite last)

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

gen: $(BIN)/.installed $(NODE_STAMP) ## regenerate the API stubs from proto/
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/buf generate
	@# google.rpc.ErrorInfo for the Node client, from the .proto that googleapis-common-protos ships
	site=$$($(PY) -c 'import google.rpc, os; print(os.path.dirname(os.path.dirname(google.rpc.__path__[0])))') && \
	  $(BIN)/buf generate "$$site" --path "$$site/google/rpc/error_details.proto" --template $(NODE)/buf.gen.rpc.yaml

GENERATED := clients/python/spool/v1 $(NODE)/src/gen server/spoold/store/schema.sql

screenshots: $(BIN)/.installed ## retake the console's screenshots in docs/console/ (headless Chromium)
	SPOOL_SCREENSHOTS=docs/console $(BIN)/pytest tests/console -q -p no:randomly -k "test_find_a_dead_job or read_key_sees or html_in or revoked or copied or schedules_listed or pipelines_steps or pipelines_page_lists"

snapshot: $(BIN)/.installed ## rewrite the schema snapshot from freshly applied migrations
	$(PY) -m spoold.store.snapshot $(SPOOL_TEST_DATABASE_URL) > server/spoold/store/schema.sql.new
	mv server/spoold/store/schema.sql.new server/spoold/store/schema.sql

verify: gen snapshot ## regenerate stubs and the schema snapshot; fail if they differ from what is checked in
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		git status --short -- $(GENERATED); git --no-pager diff --stat -- $(GENERATED); \
		echo "generated files differ from the checked-in ones: run 'make gen snapshot' and commit"; exit 1; fi

baseline: $(BIN)/.installed ## record the current API as the baseline for buf breaking (on a release)
	$(BIN)/buf build -o proto/baseline.binpb

chaos: $(BIN)/.installed $(NODE_STAMP) ## the chaos suite, short form (~3 min): kill -9, DB restarts and cuts (tests/chaos)
	SPOOL_CHAOS=1 $(BIN)/pytest tests/chaos -q -s

chaos-long: $(BIN)/.installed $(NODE_STAMP) ## the chaos suite's long form: 20,000 jobs, 4 minutes of faults
	$(PY) -m tests.chaos --long

bench: $(BIN)/.installed ## benchmarks against the database ceiling (BENCH_ARGS=--quick: under 2 min; bench/README.md)
	$(PY) -m bench $(BENCH_ARGS)

format: $(BIN)/.installed ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format $(PYSRC)
	$(BIN)/ruff check --fix $(PYSRC)

.PHONY: help install run test pytest chaos chaos-long screenshots check lint typecheck proto gen snapshot verify baseline bench format node-install node-test promtool

$(NODE_STAMP): $(NODE)/package.json $(NODE)/package-lock.json
	cd $(NODE) && npm ci --no-audit --no-fund
	touch $@

node-install: $(NODE_STAMP) ## install the Node client's pinned dependencies (npm ci)

promtool: ## test the alert rules in deploy/prometheus with promtool (Debian package prometheus)
	@command -v promtool >/dev/null || { echo "promtool not found: install Debian's prometheus package (.ci/run does)"; exit 1; }
	promtool check rules deploy/prometheus/alerts.yml
	cd deploy/prometheus && promtool test rules alerts_test.yml

node-test: $(BIN)/.installed $(NODE_STAMP) ## compile the Node client (tsc, strict) and run its tests against a live spoold
	cd $(NODE) && npm test
