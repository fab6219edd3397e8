# Two commands do everything: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WEB_BIND ?= 0.0.0.0:8000
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/pacs

.PHONY: run install install-test migrate test test-postgres bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensureadmin

run: migrate
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py compilemessages --verbosity 0 --ignore=.venv --ignore=data --ignore=ohif
	-$(BIN)/python manage.py installohif  # OHIF viewer at /ohif/ (npm; skipped with a message when offline)
	WEB_BIND=$(WEB_BIND) bash scripts/run.sh

install-test: $(VENV)/.installed-test

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: install-test
	DATABASE_URL=$(POSTGRES_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python bench/bench_store.py
	$(BIN)/python bench/bench_qr.py
	$(BIN)/python bench/bench_dicomweb.py

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
