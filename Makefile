# Two commands matter (see README "Quick start"): `make quickstart` and `make test`.
# Both create .venv and install the package into it first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
WORKDIR ?= runs/quickstart

.PHONY: quickstart test lint format benchmark clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(PY) -m tf_hourglass.train --config configs/quickstart.py --workdir $(WORKDIR)

test: $(STAMP)
	$(PY) -m ruff check tf_hourglass tests benchmarks configs
	$(PY) -m ruff format --check tf_hourglass tests benchmarks configs
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check tf_hourglass tests benchmarks configs

format: $(STAMP)
	$(PY) -m ruff format tf_hourglass tests benchmarks configs
	$(PY) -m ruff check --fix tf_hourglass tests benchmarks configs

benchmark: $(STAMP)
	$(PY) benchmarks/model_speed.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
