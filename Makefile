# Two commands do all set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo demo-ha test lint typecheck pytest bench clean package

setup: $(STAMP)
	@scripts/system-deps

$(STAMP): pyproject.toml constraints.txt scripts/system-deps scripts/azurite/package-lock.json
	@scripts/system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@scripts/install-azurite
	@touch $@

demo: setup
	$(BIN)/azlin-lifecycle demo

demo-ha: setup
	$(BIN)/azlin-lifecycle demo --ha

test: lint typecheck pytest

lint: setup
	$(BIN)/ruff check azlin_lifecycle tests bench packaging

typecheck: setup
	$(BIN)/mypy

# Nearly all of the suite's time is waiting (simulated boots, check intervals, leases), so
# it runs on more xdist workers than cores; tests sharing a resource (the systemd user
# session) share a worker, the longest work starts first (tests/support/scheduling.py).
PYTEST_WORKERS ?= 8

pytest: setup
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

# The .deb (dpkg-buildpackage), then the slow packaging tests: lintian, apt-get install,
# the packaged unit under a real user manager, purge; wheel/sdist and a pipx install.
package: setup
	deb=$$(NO_LINTIAN=1 packaging/build-deb dist) && \
	AZLIN_DEB=$$deb $(BIN)/pytest -q -m packaging tests/packaging

bench: setup
	$(BIN)/python bench/fleet.py
	$(BIN)/python bench/bastion.py

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache
