# The two commands of the quickstart, and the rest of the developer loop.
#   make run    create .venv, install secbus and secbus-sdk, start the broker on embedded defaults
#   make test   the same environment plus `npm ci` in sdk-js; every Python and Node test
#   make bench  benchmarks (BENCH_MODE=quick by default, BENCH_MODE=full for the long run)
# Each step is stamped, so a second run only redoes what changed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.secbus-installed
JS_STAMP := sdk-js/node_modules/.secbus-installed
BENCH_MODE ?= quick

.PHONY: run test test-py test-js bench clean

run: $(PY_STAMP)
	$(VENV)/bin/secbus serve $(ARGS)

test: $(PY_STAMP) $(JS_STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)
	cd sdk-js && npm test

test-py: $(PY_STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-js: $(JS_STAMP)
	cd sdk-js && npm test

bench: $(PY_STAMP) $(JS_STAMP)
	$(PY) -m benchmarks --mode $(BENCH_MODE)

$(PY_STAMP): pyproject.toml sdk-python/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "secbus needs Python 3.11 or newer; set PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ./sdk-python -e '.[test,bench]'
	touch $@

$(JS_STAMP): sdk-js/package.json sdk-js/package-lock.json
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || { echo "secbus-sdk for Node needs Node 20 or newer"; exit 1; }
	cd sdk-js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) sdk-js/node_modules .pytest_cache
