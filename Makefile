# DeepDrift: `make test` builds the environment from nothing (a .venv in the repo) and runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export MPLBACKEND := Agg

.PHONY: test env data lint paper-figures paper-figures-full paper-figures-test clean-venv

test: env data
	$(PY) -m pytest -q

lint: env
	$(VENV)/bin/ruff check .

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch/torchvision first, pinned to the releases available locally (a CUDA build; runs on the CPU too)
	$(PIP) install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

# Real Fashion-MNIST from Debian where apt works and we are root; elsewhere the loader falls back to downloads.
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1)) || \
		echo "note: could not install dataset-fashion-mnist; the loader will try its download fallbacks"; \
	else echo "note: not root or no apt; the Fashion-MNIST loader will use its cache/download fallbacks"; fi

clean-venv:
	rm -rf $(VENV)

# The README's main command: regenerate every paper figure and table on the default config (re-running is a no-op).
paper-figures: env data
	$(VENV)/bin/snakemake -s workflow/Snakefile --profile workflow/profiles/local-cpu

# The larger grids (more seeds, splits and grid points) behind the default tables, written under results/full/.
paper-figures-full: env data
	$(VENV)/bin/snakemake -s workflow/Snakefile --profile workflow/profiles/local-cpu --config config_set=full

# The same on the CI-sized config (seconds to minutes), written under results/test/.
paper-figures-test: env data
	$(VENV)/bin/snakemake -s workflow/Snakefile --profile workflow/profiles/local-cpu --config config_set=test
