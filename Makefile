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
	$(PY) bench/link_roundtrip.py
	tools/with-desktop $(PY) bench/gui.py

soak: $(STAMP)
	FLOWLINK_SOAK=1 tools/with-desktop $(PY) -m pytest -q -p no:cacheprovider tests/adversarial $(PYTEST_ARGS)

# The Linux installer: PyInstaller bundle + dist/flowlink_<version>_<arch>.deb, rebuilt when
# the app or the packaging changed (packaging/ holds the Windows and macOS scripts too).
PACKAGE_STAMP := $(VENV)/.package-installed
DEB = dist/flowlink_$(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' app/flowlink/__init__.py)_$(shell dpkg --print-architecture 2>/dev/null || echo unknown).deb
PACKAGE_SOURCES = $(shell find app packaging resources -type f -not -name '*.pyc' -not -path '*.egg-info/*' 2>/dev/null) pyproject.toml

$(PACKAGE_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[gui,package]'
	touch $(PACKAGE_STAMP)

$(DEB): $(PACKAGE_STAMP) $(PACKAGE_SOURCES)
	PYTHON=$(PY) packaging/linux/build_deb.sh

package: $(DEB)

# The installer's proof, as root: install the .deb, use only the installed program
# (CLI, flows, keyring, two linked servers, the window under Xvfb), remove it.
package-test: $(DEB)
	$(PYTHON) tests/package/proof.py $(DEB)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache

# Regenerate the README's screenshots (docs/screenshots/) under Xvfb.
screenshots: $(STAMP)
	FLOWLINK_UPDATE_SCREENSHOTS=1 tools/with-desktop $(PY) -m pytest -q -p no:xdist tests/gui/test_screenshots.py
