"""pytest plugin that lets openeo-test-suite's general compliance tests run from its wheel.

The suite looks for the openEO API spec and its request payloads relative to a source checkout
(`assets/openeo-api`, `src/openeo_test_suite/tests/general/payload_examples`), which the wheel
does not ship, and it joins the payload folder with file names in a way that only works for
absolute paths. This plugin points both at the folders named by the runner instead.

The suite validates every response with openapi-core's OpenAPI 3.1 validator. The openEO API
1.2 spec is an OpenAPI 3.0 document that marks optional values with `nullable: true`, a
keyword 3.1 dropped, so the 3.1 validator rejects every `null` the spec allows (an open-ended
collection interval, a result's `datetime`). Unless `OPENEO_COMPLIANCE_STOCK_VALIDATOR` is set,
responses are validated with the validator of the spec's own OpenAPI version.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

_VALIDATOR = pytest.StashKey[str]()
"""Which response validator this run uses, for the report header."""


def _folder(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        raise pytest.UsageError(f"{variable} is not set; run scripts/compliance.py")
    return Path(value).resolve()


def pytest_configure(config: pytest.Config) -> None:
    from openeo_test_suite.lib import compliance_util

    spec_dir = _folder("OPENEO_COMPLIANCE_SPEC_DIR")
    payloads = _folder("OPENEO_COMPLIANCE_PAYLOADS")
    compliance_util.get_spec_path = lambda: spec_dir / "openapi.yaml"
    compliance_util.get_examples_path = lambda: payloads

    with open(spec_dir / "openapi.yaml", encoding="utf-8") as f:
        openapi_version = str(yaml.safe_load(f).get("openapi", ""))
    if openapi_version.startswith("3.0.") and not os.environ.get("OPENEO_COMPLIANCE_STOCK_VALIDATOR"):
        from openapi_core import V30ResponseValidator

        compliance_util.V31ResponseValidator = V30ResponseValidator
        validator = f"OpenAPI 3.0 (the spec declares {openapi_version})"
    else:
        validator = "OpenAPI 3.1 (the suite's default)"
    config.stash[_VALIDATOR] = validator


def pytest_report_header(config: pytest.Config) -> str:
    spec_dir = os.environ.get("OPENEO_COMPLIANCE_SPEC_DIR")
    return f"openEO API spec: {spec_dir}; validator: {config.stash[_VALIDATOR]}"
