"""openEO API details that `make compliance` (openeo-test-suite) found missing, kept fixed here."""

from __future__ import annotations

import openeo

from tests.backend.client_helpers import max_ndvi_job, run_to_end

_EXTENSION_OF_PREFIX = {"proj": "projection"}
"""STAC field prefixes whose extension is named differently in its schema URL."""


def test_job_results_state_download_costs_and_extensions(connection: openeo.Connection) -> None:
    job = run_to_end(max_ndvi_job(connection, "results metadata"))
    response = connection.get(f"/jobs/{job.job_id}/results", expected_status=200)

    # The spec: OpenEO-Costs MUST be 0 for the owner while downloads are included.
    assert response.headers["OpenEO-Costs"] == "0"
    item = response.json()
    used = {key.split(":")[0] for asset in item["assets"].values() for key in asset if ":" in key}
    declared = " ".join(item["stac_extensions"])
    for prefix in used:
        name = _EXTENSION_OF_PREFIX.get(prefix, prefix)
        assert f"/{name}/" in declared, f"assets use {prefix}: fields without declaring the extension"
