# The two commands a new user needs: `make demo` and `make test`.
# Both create .venv on first use and install auditkit with its test and lint extras.
# `make test-fast` skips the end-to-end runs (marked slow) and PDF rendering, for the
# edit-test loop; `make lint` is the gate CI runs before the tests; `make test-wheel`
# builds the wheel, installs it in a fresh venv and runs its demo (CI runs it after
# `make test`: it tests the package as built, not the code, and takes ~40 s of one core).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-wheel lint benchmark clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/auditkit demo --out reports/demo

# -n auto: one worker per core (pytest-xdist); --dist loadfile keeps a file's tests, and
# so its module fixtures, on one worker. Session products every worker reads (the small
# sample quarter, the reliability workspace) are built once per run under a file lock
# (tests/conftest.py built_once), since xdist 3.8's --dist loadgroup breaks under pytest 9.2.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not wheel"

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not slow and not pdf and not wheel"

test-wheel: $(STAMP)
	$(BIN)/python -m pytest -q -m wheel

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

benchmark: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) reports/demo auditkit.duckdb .pytest_cache
