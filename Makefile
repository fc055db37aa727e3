# Everything a fresh clone needs: `make demo` and `make test` create the venv themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
export OMP_NUM_THREADS ?= 2

.PHONY: install fast-cpu demo test test-slow test-all lint format bench bench-baseline bench-allocators gpu-check wheelhouse reproduce clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned. Which build that is depends on the index: PyPI serves Linux x86-64 a
	# CUDA build, so a CPU-only one needs TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu".
	# A GPU node keeps its own CUDA torch instead (docs/performance.md, "On a GPU"); a CPU-only
	# torch beside a GPU driver says so in one warning line at the start of every run.
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION) $(TORCH_PIP_ARGS)
	$(PY) -m pip install --quiet -e '.[dev]'
	# Test-time reference only, beside the environment rather than in it (tests/conftest.py puts
	# it on sys.path): installed --no-deps into the environment, pip would print a dependency
	# conflict (no torchvision) at every later install.
	$(PY) -m pip install --quiet --no-deps --upgrade --target $(VENV)/reference spikingjelly==2.0.0 loguru
	touch $(STAMP)

install: $(STAMP)

# The allocator the program preloads when installed (tcmalloc; docs/performance.md, "Allocators"):
# a system package, so this asks apt-get as root and says what to run otherwise.
fast-cpu:
	@if ldconfig -p 2>/dev/null | grep -q libtcmalloc_minimal; then echo "tcmalloc: installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq libtcmalloc-minimal4 >/dev/null && echo "tcmalloc: installed"; \
	else echo "tcmalloc not installed: sudo apt-get install libtcmalloc-minimal4 (Debian/Ubuntu)"; fi

demo: $(STAMP)
	$(VENV)/bin/medspikeformer demo --out runs/demo

# pytest exit 5 means "no tests collected": treat it as the failure it is.
test: $(STAMP)
	$(PY) -m pytest -m "not slow" -n 2 -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no slow tests: failing"; exit 1; fi; exit $$rc

test-all: test test-slow

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/run_all.py --out bench-results $(BENCH_ARGS)

# Issue 14's workloads beside the version its table timed against the authors' code
# (BASELINE), in one run: ours / authors = (ours / baseline, this run) x (baseline / authors).
BASELINE ?= 32003e0
BASELINE_DIR := build/baseline-$(BASELINE)
bench-baseline: $(STAMP)
	rm -rf $(BASELINE_DIR) && mkdir -p $(BASELINE_DIR)
	git archive $(BASELINE) | tar -x -C $(BASELINE_DIR)
	$(PY) benchmarks/run_all.py --out bench-results/baseline --suites train,infer \
	  --models medspikeformer,medspikeformer+joint --train-configs 2x256,8x128,8x256 \
	  --infer-models medspikeformer --infer-variants fused+lif-compiled \
	  --set compile_neurons=true --warmup 1 --repeat 3 --baseline $(BASELINE_DIR) $(BENCH_ARGS)

# The allocators side by side (docs/performance.md, "Allocators"): glibc, tcmalloc, jemalloc,
# mimalloc and the former CPU tensor cache (from CACHE_COMMIT, the last version that had it).
CACHE_COMMIT ?= 96d1cda
CACHE_DIR := build/cache-$(CACHE_COMMIT)
bench-allocators: $(STAMP)
	rm -rf $(CACHE_DIR) && mkdir -p $(CACHE_DIR)
	git archive $(CACHE_COMMIT) | tar -x -C $(CACHE_DIR)
	$(PY) benchmarks/bench_allocators.py --out bench-results/allocators --cache-repo $(CACHE_DIR) $(BENCH_ARGS)

# The paper recipe (the shipped <DATASET> config: 256², T = 4, 200 epochs, joint teacher) on a dataset
# folder; prints Table 1's row. A GPU run: see benchmarks/gpu_paper_tables.sh.
DATASET ?= kvasir
DATA_ROOT ?= ../shared/data/kvasir-seg
REPRODUCE_OUT ?= exp/reproduce-$(DATASET)
reproduce: $(STAMP)
	$(VENV)/bin/medspikeformer experiment reproduce --dataset $(DATASET) --data-root $(DATA_ROOT) --out $(REPRODUCE_OUT) $(REPRODUCE_ARGS)

# One prepared run on one GPU (<= 9 min; docs/performance.md, "On a GPU"): parts 0-7, each in
# gpu-check/partN_<name>.json, the summary in gpu-check/gpu_check.{json,md}; GPU_CHECK_ARGS="--data-root DIR" etc. pass through. The node's
# python3 and CUDA torch are used unless a complete .venv exists; missing dependencies come
# from wheelhouse/ (make wheelhouse, beforehand, where the package index is reachable).
GPU_PYTHON ?=
gpu-check:
	PYTHON=$(GPU_PYTHON) benchmarks/gpu_check.sh --out gpu-check $(GPU_CHECK_ARGS)

# Wheels of every runtime dependency except torch for the GPU node (WHEEL_PYTHON, WHEEL_PLATFORMS);
# WHEELHOUSE: the folder (benchmarks/gpu_check.sh reads the same variable).
WHEEL_PYTHON ?= 3.12
WHEEL_PLATFORMS ?= manylinux_2_28_x86_64,manylinux_2_17_x86_64,manylinux2014_x86_64
WHEELHOUSE ?= wheelhouse
wheelhouse:
	$(PYTHON) benchmarks/wheelhouse.py download --dest $(WHEELHOUSE) \
	  --python-version $(WHEEL_PYTHON) --platform $(WHEEL_PLATFORMS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
