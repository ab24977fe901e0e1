# Odin: `make demo` runs a sample pipeline on this machine, `make test` runs every test.
# Both set up what they need on a fresh machine (virtual environment, Kubernetes control plane).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SAMPLE ?= samples/ml-sweep

.PHONY: help venv demo test test-fast check lint format bench k8s-build services http-setup images-setup images cluster-up cluster-down clean gpu-check-deps

help:
	@echo "make demo         run $(SAMPLE) locally (embedded SQLite store under \$$ODIN_HOME, default ~/.odin)"
	@echo "make test         every test, including the real Kubernetes control plane (built on first use)"
	@echo "make test-fast    the tests that need no control plane"
	@echo "make check        ruff, mypy and the import-layer contracts"
	@echo "make bench        every benchmark of bench/ (BENCH=name for one); numbers go to docs/benchmarks.md"
	@echo "make services     install PostgreSQL and build FerretDB for the store tests (tools/services)"
	@echo "make images       build the images (core, gateway, midgard) with podman or docker; BASE=local: no registry"
	@echo "make cluster-up   build (once) and start a local control plane; prints its kubeconfig"
	@echo "make cluster-down stop it"

$(STAMP): odin-core/pyproject.toml odin-client/pyproject.toml odin-http/pyproject.toml midgard/pyproject.toml requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -e ./odin-core -e ./odin-client -e ./odin-http -e ./midgard
	touch $@

venv: $(STAMP)

demo: venv
	$(VENV)/bin/odin run $(SAMPLE)

test: venv k8s-build services http-setup images-setup
	$(PY) -m pytest

test-fast: venv services http-setup images-setup
	$(PY) -m pytest --ignore=tests/k8s --ignore=tests/midgard/k8s --ignore=tests/deploy/test_k8s.py

check: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd odin-core/src && ../../$(VENV)/bin/lint-imports --config ../../pyproject.toml

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: venv k8s-build services http-setup
	$(PY) bench/run.py $(BENCH)

http-setup:
	bash tools/http/setup.sh

# podman, buildah, mmdebstrap, runc and podman's settings files for tests/deploy (tools/images/setup.sh)
images-setup:
	bash tools/images/setup.sh

# Odin's images (docker/*.Dockerfile). BASE=local makes a Debian base here (no registry needed); IMAGES=… picks
# some (core gateway midgard postgres); SAVE=DIR also writes DIR/<image>.tar for `microk8s images import`.
BASE ?=
IMAGES ?=
SAVE ?=
images:
	$(PYTHON) tools/images/build.py $(if $(BASE),--base $(BASE)) $(if $(SAVE),--save $(SAVE)) $(IMAGES)

k8s-build:
	bash tools/k8s/build.sh

services:
	bash tools/services/setup.sh

cluster-up: venv k8s-build
	$(PY) tools/k8s/cluster.py up

cluster-down: venv
	$(PY) tools/k8s/cluster.py down

# The agent's dependencies alone, in a folder to carry to a GPU machine (midgard/tools/gpu_check.sh, docs/midgard.md)
gpu-check-deps: venv
	rm -rf .gpu-deps
	$(PY) -m pip install -q --target .gpu-deps nvidia-ml-py psutil aiohttp

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
