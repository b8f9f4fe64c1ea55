# Two entry points for a fresh machine: `make course` and `make test`; `make lab` to step through.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PROFILE ?= smoke

.PHONY: course test lint install clean sync mutants gpu-install

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

# The step-through: JupyterLab at the repository root (notebooks/ and runs/ in its file browser),
# opened at notebook 01 of the learner's copies in runs/notebooks/ (git ignores runs/, so running
# and saving never shows in `git status`; delete a copy to get the course's version back). The
# notebooks' .py twins are hidden, so each notebook is listed once. LAB_ARGS: more options.
.PHONY: lab
lab: $(STAMP)
	mkdir -p runs/notebooks
	for nb in notebooks/*.ipynb; do test -e runs/notebooks/$${nb##*/} || cp $$nb runs/notebooks/; done
	$(VENV)/bin/jupyter lab --config=configs/jupyter_lab_config.json $(LAB_ARGS)

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

gpu-install:  # the 8-GPU machine: vLLM's torch, cosmos-rl, then flash-attn built against that torch
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[gpu,train,ray,dev]"
	$(PIP) install --no-build-isolation -e ".[flash]"
	$(PY) -m recipe_utils doctor --profile full
