# The two commands a new user needs: `make up` (run the system) and `make test` (check it).
# Everything else here is a step of those two, runnable on its own.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from the PATH, else a private copy installed into .cache/ on first use (no system changes).
UV ?= $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.cache/uv/bin/uv)
export UV_PYTHON_DOWNLOADS ?= never
PACKAGES := pm_common devstack api_gateway auth_service patient_service billing_service analytics_service
# Workspace members with code of their own: deptry checks each declares exactly what it imports.
MEMBERS := libs/pm-common libs/pm-proto devstack api-gateway auth-service patient-service billing-service analytics-service
# Test folders are type-checked one at a time: each is a namespace package `tests` of its member.
TEST_DIRS := libs/pm-common devstack api-gateway auth-service patient-service billing-service analytics-service infrastructure

.PHONY: help install up down status clean test lint typecheck unit proto bench chaos

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(CURDIR)/.cache/uv/bin/uv:
	python3 -m venv $(CURDIR)/.cache/uv
	$(CURDIR)/.cache/uv/bin/pip install --quiet uv

.venv/.synced: $(UV) uv.lock pyproject.toml $(wildcard */pyproject.toml libs/*/pyproject.toml)
	$(UV) sync --all-packages --locked
	@touch $@

install: .venv/.synced ## Install the locked dependencies into .venv

up: install ## Start PostgreSQL, Kafka and every service under supervisord (restarted if they die); print the URLs
	$(UV) run --no-sync devstack up

down: ## Stop everything `make up` started, supervisord included
	@$(UV) run --no-sync devstack down

status: ## Per process of the local stack: state, pid, uptime, restarts, and what gave up (FATAL)
	@$(UV) run --no-sync devstack status

clean: ## Stop everything and delete local data (databases, topics, logs)
	@$(UV) run --no-sync devstack clean

lint: install ## ruff, and deptry (every member declares exactly the packages it imports)
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	@for member in $(MEMBERS); do (cd $$member && $(UV) run --no-sync deptry src) || exit 1; done

typecheck: install ## mypy (strict) on every package, every test folder, the integration suite and bench
	$(UV) run --no-sync mypy $(addprefix -p ,$(PACKAGES))
	@for member in $(TEST_DIRS); do \
	  echo "mypy $$member/tests"; MYPYPATH=$$member $(UV) run --no-sync mypy --explicit-package-bases $$member/tests || exit 1; \
	done
	$(UV) run --no-sync mypy --explicit-package-bases integration-tests bench

unit: install ## The unit tests alone: no PostgreSQL, Kafka, Java or service process (pytest -m unit)
	$(UV) run --no-sync pytest -m unit $(PYTEST_ARGS)

proto: install ## Regenerate libs/pm-proto from proto/*.proto
	$(UV) run --no-sync python libs/pm-proto/generate.py

bench: install ## Benchmarks against the running `make up` stack (wrk; see bench/README.md)
	$(UV) run --no-sync python bench/bench.py $(BENCH_ARGS)

chaos: install ## kill -9 a random process every 10 s under load, then check nothing was lost (CHAOS_SECONDS=180)
	$(UV) run --no-sync python bench/chaos.py $(CHAOS_ARGS)

test: lint typecheck ## Lint, types, every package's tests and the integration suite (its own stack on free ports)
	$(UV) run --no-sync pytest $(PYTEST_ARGS)
