# microlearn — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION ?= 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_output
export UV_COMPILE_BYTECODE := 1
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export MPLBACKEND := Agg

.PHONY: install demo test test-fast bench dashboard lint system-deps binder clean docs

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras
	touch $@

# Compile the numba fitting kernels into their on-disk cache once, so that the first fit
# of a fresh process loads them (~0.5 s) instead of compiling them (~1 min). Re-run only
# when a kernel source changes; a no-op (make sees the stamp) otherwise.
KERNEL_SOURCES := $(wildcard microlearn/fitting/*.py microlearn/fitting/*/*.py microlearn/compartments/*.py)
$(VENV)/.warm: $(VENV)/.synced $(KERNEL_SOURCES)
	$(BIN)/python -m microlearn.fitting.compiled.warm
	touch $@

# Bytecode of the (editable) package: a fresh command otherwise compiles every module it
# imports when the environment sets PYTHONDONTWRITEBYTECODE (~0.02-0.1 s per command).
$(VENV)/.bytecode: $(VENV)/.synced $(shell find microlearn -name '*.py')
	$(BIN)/python -m compileall -q microlearn
	touch $@

install: $(VENV)/.synced $(VENV)/.warm $(VENV)/.bytecode

# Debian packages the tests need (headless Chromium for the dashboards, a software
# Vulkan device for FURY). Installed only when missing; needs root and apt-get.
system-deps:
	@bash scripts/install_system_deps.sh

demo: install
	$(BIN)/microlearn demo --out $(DEMO_OUT) --force

test: install system-deps
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not browser"

bench: install
	$(BIN)/python -m benchmarks

dashboard: install
	$(BIN)/microlearn dashboard widgets --port 8866

# Binder installs the run-time part of the lock: the library and the extras a workshop
# uses (TensorFlow, Dask, dashboards, glyphs), no test, docs, browser or benchmark packages.
BINDER_EXTRAS := --extra tf --extra dask --extra app --extra viz3d
binder: $(UV)
	$(UV) export --frozen $(BINDER_EXTRAS) --no-hashes --no-emit-project --no-header \
		--no-annotate -o binder/requirements.txt

# The documentation site (API from the docstrings, the lessons with their stored outputs
# and widgets, the CLI from argparse); any Sphinx warning fails the build. The widget
# manager comes from the npm registry once (pinned, cached in .tools/; needs npm).
docs: install
	@bash scripts/fetch_widget_manager.sh >/dev/null
	@mkdir -p docs/_build
	set -o pipefail; $(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html 2>&1 \
		| tee docs/_build/sphinx.log
	@# docutils reports some problems (e.g. in argparse help) past Sphinx's -W: fail on them too
	@! grep -E "WARNING|ERROR" docs/_build/sphinx.log
	@echo "docs: file://$(CURDIR)/docs/_build/html/index.html"

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(TOOLS) $(DEMO_OUT) .pytest_cache docs/_build docs/lessons docs/api docs/jupyter_execute
