# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Each creates its own virtual environment. torch is pinned first so that the CPU build
# (torch==2.13.0) is taken where it is available and no CUDA packages are pulled in.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
WORKSPACE ?= workspace
TORCH_SPEC ?= torch==2.13.0
# e.g. https://download.pytorch.org/whl/cpu on machines where PyPI's default torch build carries CUDA
TORCH_INDEX ?=

.PHONY: install demo test clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/racer demo $(WORKSPACE)

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV)
