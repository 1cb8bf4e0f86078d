# Flowlink: `make run` opens the app, `make test` runs the whole suite.
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test lint bench soak package package-test clean screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[gui,test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/flowlink

lint: $(STAMP)
	$(VENV)/bin/ruff check app tests bench

# The suite needs a session bus and a Secret Service for the keyring tests; the
# fixtures start private ones (tests/keyring_fixture.py). Qt runs offscreen unless
# DISPLAY is set (CI runs it under Xvfb with a tray host).
test: $(STAMP) lint
	tools/with-desktop $(PY) -m pytest -q -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/local_flows.py

soak: $(STAMP)
	FLOWLINK_SOAK=1 tools/with-desktop $(PY) -m pytest -q -p no:cacheprovider tests/adversarial $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
