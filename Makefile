# One Makefile for the project. Every target sets up what it needs by itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-all lint lint-imports check demo docs ptx screenshots bench gpu-check clean

venv: $(STAMP)

# The virtualenv is rebuilt whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@echo "setting up $(VENV) from pyproject.toml (first run, or pyproject.toml changed) ..."
	@$(PYTHON) -m venv $(VENV)
	@{ $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -e '.[dev]'; } \
		> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

# The default suite: SQLite and a throwaway PostgreSQL 15, the console in a headless Chromium;
# no GPU, no slow soak runs.
test: $(STAMP)
	scripts/setup-browser.sh
	scripts/with-postgres.sh $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP) lint-imports
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# The layering (pyproject.toml [tool.importlinter]): arrows one way, no import circles.
lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports

check: lint test

demo: $(STAMP)
	$(PY) scripts/demo.py

# The console's pages in Chromium, desktop and 360 px wide, for docs/console.md.
screenshots: $(STAMP)
	scripts/setup-browser.sh
	$(PY) scripts/screenshots.py

ptx: $(STAMP)  # needs the CUDA toolkit (nvcc, ptxas); the PTX is committed
	$(PY) scripts/build_ptx.py

# docs/api.md and docs/configuration.md, rendered from the code (a test fails when they are stale).
docs: $(STAMP)
	$(PY) scripts/render_docs.py
	$(PY) scripts/render_dashboards.py

bench: $(STAMP)
	scripts/with-postgres.sh $(PY) bench/run_all.py $(BENCH)

# The real-GPU check: probe plus the gpu-marked tests (they skip cleanly without a GPU).
# Exit 69 from probe means "no GPU access here": the target then passes with the tests skipped.
gpu-check: $(STAMP)
	$(PY) -m pytest -m gpu -v -rs
	$(PY) -m agent probe --json || { rc=$$?; [ $$rc -eq 69 ] && echo "gpu-check: no GPU here (exit 69), skipped"; }

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
