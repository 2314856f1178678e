# The two commands of README.md: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install install-dev requirements lint bench bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Both files are locks with hashes (make requirements): pip refuses any package, transitive ones
# included, that is not pinned there with a hash matching the downloaded file.
$(STAMP): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.txt
	touch $@

$(STAMP)-dev: requirements.txt requirements-dev.txt $(STAMP)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.txt -r requirements-dev.txt
	touch $@

install: $(STAMP)

install-dev: $(STAMP)-dev

## make requirements: compile requirements.in into requirements.txt and requirements-dev.in into
## requirements-dev.txt (pip-tools), every transitive dependency pinned with its hashes. Existing
## pins are kept; PIP_COMPILE_ARGS="--upgrade-package NAME" moves a transitive one. Commit all four.
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make requirements" $(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	--no-emit-index-url --no-emit-find-links $(PIP_COMPILE_ARGS)
requirements: install-dev
	$(PIP_COMPILE) --output-file requirements.txt requirements.in
	$(PIP_COMPILE) --output-file requirements-dev.txt requirements-dev.in

## make run: install, migrate, load the demo data, start web + Celery worker + beat.
## HOST and PORT (environment) choose the address; seed_demo prints the same URLs as devrun.
run: install
	$(BIN)/python manage.py migrate --no-input
	SITE_URL="$${SITE_URL:-http://$${HOST:-127.0.0.1}:$${PORT:-8000}}" $(BIN)/python manage.py seed_demo
	$(BIN)/python -m omnichannel.devrun

## make test: install what the tests need and run the whole suite.
test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make bench: the whole benchmark (docs/benchmark.md) against a local PostgreSQL and Redis;
## BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_RUNS, BENCH_DURATION, ... adjust it.
bench: install-dev
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## make bench-smoke: a few seconds of small load; fails unless lost=0 duplicated=0.
bench-smoke: install-dev
	$(BIN)/python -m bench.run --smoke $(BENCH_ARGS)

## make lint: ruff (checks and formatting), the import contracts of pyproject.toml (import-linter)
## and missing migrations. CI runs it.
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
