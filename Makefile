# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEMO_DIR  := .demo

.PHONY: install demo test lint bench experiments clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	DEMO_DIR=$(DEMO_DIR) $(BIN)/python -m crawler.demo

test: $(STAMP)
	.ci/ensure-postgres
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 3 -m "not serial" --hypothesis-profile=ci  # I/O-bound: 3 at once
	$(BIN)/python -m pytest -q -m serial --hypothesis-profile=ci

# Benchmarks print figures; they are not tests and stay out of `make test`.
bench: $(STAMP)
	$(BIN)/python -m crawler.bench_sites
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	.ci/ensure-postgres
	$(BIN)/python -m fixtures.bench
	$(BIN)/python -m crawler.bench_frontier
	$(BIN)/python -m crawler.bench_distributed
	$(BIN)/python -m crawler.bench
	$(BIN)/python -m crawler.bench_query

# The claims about threads, processes and asyncio, at full size (about 20 minutes on 2 cores).
experiments: $(STAMP)
	mkdir -p bench-out
	$(BIN)/crawler compare --experiment all --db sqlite:///bench-out/experiments.db \
		--report bench-out/experiments.html

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache .hypothesis
