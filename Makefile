# Two entry points, each doing all set-up on a fresh machine: `make demo` and `make test`.
# TORCH picks the torch build pip installs first; the default pins the releases this project is tested
# with (torch 2.14.1 + torchvision 0.29.1). GPU users: `make test TORCH="torch torchvision"` or any build.
PY ?= python3
VENV ?= .venv
TORCH ?= torch==2.14.1 torchvision==0.29.1

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q $(TORCH)
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

demo: $(VENV)/.installed
	$(VENV)/bin/closekit train params/nb201/mini-vanilla.yaml
	$(VENV)/bin/closekit train params/nb201/mini-close.yaml

.PHONY: install test demo
