# Everything runs through uv (installed on first use) so a fresh clone needs only Python 3.11+.
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN := $(UV) run --locked

.PHONY: help bootstrap sync dev test test-fast protos protos-check lint fmt typecheck check

help:
	@echo "make dev          start the whole local stack (Ctrl-C stops it)"
	@echo "make test         lint, check generated code, run every test (starts its own stack)"
	@echo "make protos       regenerate Python code and the gateway descriptor from protos/"
	@echo "make lint fmt typecheck protos-check"

bootstrap:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check 'uv>=0.9'

sync: bootstrap
	@$(UV) sync --locked --quiet

dev: sync
	$(RUN) python -m ecom_stack

protos: sync
	$(RUN) python libs/protos/generate.py

# CI fails when the committed generated code no longer matches protos/.
protos-check: protos
	@git diff --exit-code --stat -- libs/protos/src gateway/src/ecom_gateway/api_descriptor.pb \
	  || (echo "generated code is stale: run 'make protos' and commit" && exit 1)
	@test -z "$$(git status --porcelain -- libs/protos/src)" \
	  || (echo "untracked generated files: run 'make protos' and commit" && exit 1)

lint: sync
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) buf lint

fmt: sync
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

typecheck: sync
	$(RUN) mypy libs/runtime/src gateway/src deploy/src $(wildcard services/*/src)

check: protos-check lint typecheck

test: check
	$(RUN) pytest

test-fast: sync
	$(RUN) pytest -x -q
