# One task runner. The README's two commands: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the converted default model; deleting it makes the next `make` convert it again
MODEL := $(or $(NEURALCORE_HOME),$(HOME)/.cache/neuralcore)/models/all-MiniLM-L6-v2/neuralcore.json

.PHONY: setup demo test lint typecheck pytest bench format clean

$(STAMP): pyproject.toml scripts/setup.sh
	PY=$(PY) bash scripts/setup.sh
	touch $(STAMP)

# converted when missing or when the conversion script changed (it skips a model that is
# already complete); order-only on the venv, so a refreshed venv does not reconvert
$(MODEL): scripts/post_install.sh | $(STAMP)
	bash scripts/post_install.sh
	test -f $@ && touch $@

setup: $(STAMP) $(MODEL)

demo: setup
	$(BIN)/neuralcore demo

test: setup lint typecheck pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy --strict src

# two workers (one per core here); a file's tests stay on one worker, so module fixtures
# (the parity set's reference embeddings) are computed once. PYTEST_WORKERS=0: one process
PYTEST_WORKERS ?= 2
pytest: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15

bench: setup
	$(BIN)/neuralcore bench all

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
