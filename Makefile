# Two entry points for a fresh machine: `make course` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PROFILE ?= smoke

.PHONY: course test lint install clean sync mutants

$(STAMP): pyproject.toml constraints/cpu.txt
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -c constraints/cpu.txt -e ".[dev,train]"
	touch $(STAMP)

install: $(STAMP)

course: $(STAMP)
	$(PY) -m recipe_utils course --profile $(PROFILE)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check recipe_utils tests bench notebooks

# Mutation testing of the core modules (about 30 minutes on 2 cores; resumable); not part of
# `make test`. Records the score in bench/results/mutants.json and bench/README.md.
mutants: $(STAMP)
	$(PY) bench/mutants.py

clean:
	rm -rf runs mutants .pytest_cache .ruff_cache

sync: $(STAMP)  # after editing a notebook's .py twin: regenerate the .ipynb, without outputs
	$(VENV)/bin/jupytext --to ipynb notebooks/0*.py
	$(VENV)/bin/nbstripout notebooks/*.ipynb
