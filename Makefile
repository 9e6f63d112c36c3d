# Two commands: `make run` (a working installation on embedded defaults) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test

$(VENV)/.run-installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.test-installed: $(VENV)/.run-installed requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

run: $(VENV)/.run-installed
	PORT=$(PORT) bin/run-demo

test: $(VENV)/.test-installed
	bin/run-tests
