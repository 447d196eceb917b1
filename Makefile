# The two commands a newcomer needs: `make run` and `make test` (see README.md).
# Everything installs into .venv from PyPI, pinned by constraints.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR):$(CURDIR)/gen

.PHONY: venv gen gen-check lint-proto breaking lint typecheck check run test test-unit compose-config clean

venv: $(STAMP)
$(STAMP): requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $(STAMP)

gen: venv            ## regenerate gen/ from proto/
	$(PY) tools/gen.py

gen-check: venv      ## fail when gen/ is stale
	$(PY) tools/gen.py --check

lint-proto: venv
	$(VENV)/bin/buf lint

breaking: venv       ## v1 must stay wire- and JSON-compatible with main
	$(PY) tools/breaking.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy services devstack tools bench simulators

check: gen-check lint-proto breaking lint typecheck

run: venv            ## start the whole stack; Ctrl-C stops it
	$(PY) -m devstack run

test: venv           ## start what the tests need, run every test, stop it
	$(MAKE) check
	$(PY) -m pytest -q

compose-config: venv ## write what compose.yaml mounts into .state/compose/ (README "Containers")
	$(PY) -m devstack compose-config

test-unit: venv
	$(PY) -m pytest -q tests/unit

clean:
	rm -rf .state
