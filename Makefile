# The two set-up commands (README): `make run` and `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
GW      := $(VENV)/bin/ghostwrite
MODEL   ?= shakespeare
BUDGET  ?= 120

.PHONY: run test lint install bench drills clean

$(VENV)/.installed: pyproject.toml scripts/install-torch.sh
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	scripts/install-torch.sh $(VPY)
	$(VPY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Fetch the default corpus, train the default model if there is none, then open the REPL.
run: install
	$(GW) corpus get $(MODEL)
	$(GW) models show $(MODEL) >/dev/null 2>&1 || $(GW) train $(MODEL) --max-time $(BUDGET)
	$(GW) repl $(MODEL)

# The whole test suite (CPU, no network).
test: install
	$(VPY) -m pytest -q

# ruff (pyflakes, import order, bugbear) and mypy on the typed seams (the service interface, the settings contract).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: install
	$(VPY) bench/quality.py
	$(VPY) bench/generation.py
	$(VPY) bench/memory.py

drills: install
	$(VPY) -m pytest -q -m slow tests/drills tests/adversarial

clean:
	rm -rf $(VENV) build *.egg-info
