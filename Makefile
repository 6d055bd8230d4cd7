# One command for the main job, one for the tests; each creates .venv and installs what it needs on first use.
PYTHON ?= python3
TORCH_INDEX ?=  # e.g. https://download.pytorch.org/whl/cpu: install torch from there first (the CPU build)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench asv clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH_INDEX),$(PY) -m pip install -q torch torchaudio --index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m suite run --all

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m suite bench

asv: $(STAMP)
	$(VENV)/bin/asv run --quick --environment existing:$(abspath $(PY))

clean:
	rm -rf $(VENV) results .asv .pytest_cache
