# `make run`: set up, fetch data, execute every notebook into reports/.
# `make test`: set up, fetch data, run the whole test suite.
# Needs only python3 (>= 3.10) and make; everything else goes into .venv.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PROFILE ?= quick

SEEDS ?= 5
FIRST_SEED ?= 0

.PHONY: help install strip-outputs data run test test-unit lab bench claims clean

help:
	@echo "make run     execute every notebook ($(PROFILE) profile) into reports/ as .ipynb and HTML"
	@echo "make test    the whole test suite: unit tests, every notebook via papermill, then pytest --nbval-lax"
	@echo "make test-browser  every notebook in JupyterLab in headless Chromium: Run All, move a slider; screenshots in reports/browser/"
	@echo "make lab     JupyterLab on notebooks/"
	@echo "make claims  every notebook on DATASETS x seeds FIRST_SEED.. (SEEDS of them), one per core; prints each claim's smallest margin"
	@echo "make test-gpu  (on a CUDA machine) the unit suite and every notebook on the GPU, one line per notebook"
	@echo "make bench   benchmarks/ (prints ratios against a baseline measured in the same run)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (trainlab)" >/dev/null
	@$(MAKE) --no-print-directory strip-outputs
	@touch $(STAMP)

# Notebook outputs never reach a commit: git runs every .ipynb through nbstripout
# (outputs, execution counts, and the metadata JupyterLab rewrites), so exploring in
# `make lab` leaves `git status` clean. Skipped outside a git checkout.
NB_EXTRA_KEYS := metadata.language_info
strip-outputs:
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  $(VENV)/bin/nbstripout --install && \
	  git config filter.nbstripout.extrakeys "$(NB_EXTRA_KEYS)" && \
	  echo "nbstripout git filter installed: notebook outputs stay out of commits"; fi

install: $(STAMP)

data: install
	$(PY) -m trainlab fetch mnist fashion_mnist diabetes

run: data
	$(PY) -m trainlab report --profile $(PROFILE) --out reports notebooks/*.ipynb

# One fresh run cache for the whole suite: the nbval pass reuses what the papermill
# tests trained, and nothing from an earlier version of the harness is reused.
TEST_RUNS := $(CURDIR)/data/test-runs

# The suite runs in TEST_WORKERS processes (pytest-xdist); the harness shares the cores
# between them (trainlab.threads): small runs leave a core idle, two processes do not.
TEST_WORKERS ?= 2

test: data
	$(VENV)/bin/lint-imports
	rm -rf $(TEST_RUNS)
	TRAINLAB_RUNS=$(TEST_RUNS) $(PY) -m pytest -n $(TEST_WORKERS)
	TRAINLAB_RUNS=$(TEST_RUNS) TRAINLAB_PROFILE=smoke TRAINLAB_PROGRESS=0 $(PY) -m pytest --nbval-lax --nbval-cell-timeout=300 notebooks/

test-unit: data
	$(PY) -m pytest -m "not notebook"

# The same unit suite and every notebook with `device` resolving to cuda (the specs'
# default, "auto", picks it): fails at once where torch sees no GPU. Notebooks run
# one per core (smoke; PROFILE=quick for the quick profile), each printing
# "held/total claims held (seconds)".
GPU_PROFILE ?= smoke
ifeq ($(origin PROFILE),command line)
GPU_PROFILE := $(PROFILE)
endif
.PHONY: test-gpu
test-gpu: data
	@$(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'make test-gpu: torch sees no CUDA device here')"
	rm -rf $(TEST_RUNS)
	TRAINLAB_RUNS=$(TEST_RUNS) TRAINLAB_PROGRESS=0 $(PY) -m pytest -m "not notebook and not browser" -n auto
	TRAINLAB_RUNS=$(TEST_RUNS) TRAINLAB_PROGRESS=0 $(PY) -m trainlab claims --profile $(GPU_PROFILE) --seeds 1 \
	  --datasets mnist,fashion_mnist --out reports/gpu notebooks/*.ipynb

# Needs Chromium (apt-get install -y chromium); playwright comes with the dev extra.
.PHONY: test-browser
test-browser: data
	$(PY) -m pytest -m browser tests/browser

lab: data
	$(VENV)/bin/jupyter lab notebooks/

DATASETS ?= mnist,fashion_mnist
claims: data
	TRAINLAB_PROGRESS=0 $(PY) -m trainlab claims --profile $(PROFILE) --seeds $(SEEDS) --first-seed $(FIRST_SEED) --datasets $(DATASETS) --out reports/seeds notebooks/*.ipynb

bench: data
	$(PY) benchmarks/mnist_time_to_accuracy.py
	$(PY) benchmarks/shared_cpu.py
	$(PY) benchmarks/sweep_parallel.py
	$(PY) benchmarks/stacked_sweep.py

clean:
	rm -rf reports .pytest_cache
