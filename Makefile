# Two entry points for a fresh machine: `make course` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PROFILE ?= smoke

.PHONY: course test lint install clean sync gpu-install

$(STAMP): pyproject.toml constraints/cpu.txt
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -c constraints/cpu.txt -e ".[dev,train,ray]"
	touch $(STAMP)

install: $(STAMP)

course: $(STAMP)
	$(PY) -m recipe_utils course --profile $(PROFILE)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check recipe_utils tests bench notebooks

clean:
	rm -rf runs .pytest_cache .ruff_cache

sync: $(STAMP)  # after editing a notebook's .py twin: regenerate the .ipynb, without outputs
	$(VENV)/bin/jupytext --to ipynb notebooks/0*.py
	$(VENV)/bin/nbstripout notebooks/*.ipynb

gpu-install:  # the 8-GPU machine: vLLM's torch, cosmos-rl, then flash-attn built against that torch
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[gpu,train,ray,dev]"
	$(PIP) install --no-build-isolation -e ".[flash]"
	$(PY) -m recipe_utils doctor --profile full
