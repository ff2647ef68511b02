# Two commands on a fresh machine: `make demo` and `make test`. Each bootstraps .venv from the
# pinned requirements.lock first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck compliance bench clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

# UDP_DIR=path/to/apex/udps runs the APEx bap_composite instead of the project's own BAP UDP.
demo: $(STAMP)
	$(BIN)/openeo-upscale demo $(if $(UDP_DIR),--udp-dir $(UDP_DIR))

# Two workers (pytest-xdist): most end-to-end tests wait on simulated jobs, so two processes
# take about 60% of the time of one on CI's two cores. `.venv/bin/pytest` runs in one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	@scripts/install-chromium.sh
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check openeo_upscale tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) demo-output .pytest_cache

# openeo-test-suite's general API compliance tests against a freshly started local backend, with
# the openEO API spec beside the clone. The suite gets its own venv: it pins its own pytest and
# openapi-core. Reports go to test-artifacts/compliance/.
COMPLIANCE_VENV := .venv-compliance
COMPLIANCE_STAMP := $(COMPLIANCE_VENV)/.installed
OPENEO_API_SPEC ?= ../shared/openeo-api

$(COMPLIANCE_STAMP): requirements-compliance.lock
	@test -x $(COMPLIANCE_VENV)/bin/python || $(PYTHON) -m venv $(COMPLIANCE_VENV)
	$(COMPLIANCE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-compliance.lock
	@touch $(COMPLIANCE_STAMP)

compliance: $(STAMP) $(COMPLIANCE_STAMP)
	$(BIN)/python scripts/compliance.py --suite-python $(COMPLIANCE_VENV)/bin/python --api-spec $(OPENEO_API_SPEC)
