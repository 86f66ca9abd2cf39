# Two commands matter (see README "Quick start"): `make quickstart` and `make test`.
# Both create .venv and install the package into it first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
WORKDIR ?= runs/quickstart

.PHONY: quickstart test test-fast lint format benchmark clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Train and evaluate on synthetic figures, then export the model for TF Serving
# and phones (each export checks itself against the trained model).
quickstart: $(STAMP)
	$(PY) -m tf_hourglass.train --config configs/quickstart.py --workdir $(WORKDIR)
	$(PY) -m tf_hourglass.export --model $(WORKDIR) --format saved_model --output $(WORKDIR)/export/saved_model --overwrite
	$(PY) -m tf_hourglass.export --model $(WORKDIR) --format tflite --output $(WORKDIR)/export/model.tflite --overwrite

# Two pytest workers: much of the test time is single-threaded tracing and process
# start-up, so two workers nearly halve the suite's time on 2 cores. loadscope keeps
# each module's fixtures (trained tiny models, exports) in one worker.
test: $(STAMP)
	$(PY) -m ruff check tf_hourglass tests benchmarks configs export
	$(PY) -m ruff format --check tf_hourglass tests benchmarks configs export
	$(PY) -m pytest -q -n 2 --dist loadscope

# The quick signal while editing (about 2 minutes): lint, and every test not marked
# e2e (the ones that train, export, or run a command or notebook end to end).
test-fast: $(STAMP)
	$(PY) -m ruff check tf_hourglass tests benchmarks configs export
	$(PY) -m pytest -q -n 2 --dist loadscope -m "not e2e"

lint: $(STAMP)
	$(PY) -m ruff check tf_hourglass tests benchmarks configs export

format: $(STAMP)
	$(PY) -m ruff format tf_hourglass tests benchmarks configs export
	$(PY) -m ruff check --fix tf_hourglass tests benchmarks configs export

benchmark: $(STAMP)
	$(PY) benchmarks/model_speed.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
