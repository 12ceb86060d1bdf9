# Everything installs from scratch into .venv: torch 2.13.0 (CPU wheel) first, pinned by
# constraints.txt, so that no later step can pull the registry's newest torch and its CUDA packages.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --constraint constraints.txt
STAMP := $(VENV)/.installed
# The browser tests drive Debian's Chromium (Playwright's own browser download is not available here).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo test docs lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	# PostgreSQL for the test of sweep workers sharing a study (tests/sweep/test_sweep_database.py)
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vaekit train --dataset digits --epochs 30

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest

# The documentation site (mkdocs.yml) into site/; --strict: a broken link or API reference fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

bench: $(STAMP)
	$(PY) benchmarks/epoch_speed.py
	$(PY) benchmarks/run_speed.py
	$(PY) benchmarks/quality.py
	$(PY) benchmarks/conv_speed.py
	$(PY) benchmarks/models.py
	$(PY) benchmarks/eval_speed.py --full
	$(PY) benchmarks/priors.py
	$(PY) benchmarks/folders.py
	$(PY) benchmarks/own_data.py --epochs 30 --conv-epochs 8 --likelihood-epochs 5
	$(PY) benchmarks/serve_load.py

clean:
	rm -rf $(VENV) src/*.egg-info site
