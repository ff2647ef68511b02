"""The simulated memory model: a job needs memory by its area, months and bands; one that needs more
than it gets (its job options' executor memory, else the default, at most the limit) ends in error
with an out-of-memory line in its logs, and is billed for what it used. In real mode the same model,
when configured, refuses such a job before it computes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openeo
import pytest
from openeo.rest.job import BatchJob

from openeo_upscale.backend import BackendConfig, LocalBackend, Simulation
from openeo_upscale.backend.config import Mode
from openeo_upscale.backend.simulate import (
    DEFAULT_BANDS,
    Extent,
    bands_of,
    extent_of,
    memory_mb,
    memory_needed_mb,
    simulated_seconds,
)
from tests.backend.client_helpers import run_to_end

MODEL = Simulation(
    time_scale=0.002,
    queue_seconds=1.0,
    memory_default_mb=2048,
    memory_limit_mb=8192,
    memory_base_mb=500,
    memory_per_km2_mb=40,
    memory_per_month_mb=100,
)
SMALL: dict[str, Any] = {"west": 4.40, "south": 51.20, "east": 4.43, "north": 51.22}  # ~4.7 km²: ~900 MB
LARGE: dict[str, Any] = {"west": 4.40, "south": 51.20, "east": 4.52, "north": 51.27}  # ~65 km²: ~3300 MB
HUGE: dict[str, Any] = {"west": 4.0, "south": 51.0, "east": 4.3, "north": 51.2}  # ~460 km²: over the limit


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[openeo.Connection]:
    with LocalBackend(BackendConfig(state_dir=tmp_path / "state", simulation=MODEL)) as backend:
        yield openeo.connect(backend.url).authenticate_basic("demo", "demo")


def _job(connection: openeo.Connection, bbox: dict[str, float], **job_options: Any) -> BatchJob:
    cube = connection.load_collection(
        "SENTINEL2_L2A",
        spatial_extent=bbox,
        bands=["B04", "B08"],
        temporal_extent=["2023-06-01", "2023-07-01"],
    )
    return cube.create_job(title="memory", job_options=job_options or None)


def test_memory_needed_grows_with_area_and_months() -> None:
    small, large = (
        Extent(**SMALL, start="2023-06-01", end="2023-07-01"),
        Extent(**LARGE, start="2023-06-01", end="2023-07-01"),
    )
    assert 700 < memory_needed_mb(small, MODEL) < 1100 < 2048 < memory_needed_mb(large, MODEL) < 8192
    longer = Extent(**SMALL, start="2023-01-01", end="2023-07-01")
    assert memory_needed_mb(longer, MODEL) == pytest.approx(
        memory_needed_mb(small, MODEL) + 100 * longer.months - 100, rel=0.05
    )
    assert [memory_mb(v) for v in ("2g", "2048m", "512M", "1.5G", 3000, "lots", True, 0)] == [
        2048,
        2048,
        512,
        1536,
        3000,
        None,
        None,
        None,
    ]


def test_a_job_over_its_memory_ends_in_error_saying_so(connection: openeo.Connection) -> None:
    small = run_to_end(_job(connection, SMALL))
    assert small.status() == "finished"
    large = run_to_end(_job(connection, LARGE), require_success=False)
    assert large.status() == "error"
    errors = [entry["message"] for entry in large.logs(level="error")]
    assert any("exceeded its memory limit" in m and "exit code 137" in m for m in errors), errors
    assert large.describe()["costs"] > 0  # billed for what it used, as CDSE does


def test_more_executor_memory_in_the_job_options_lets_it_finish_up_to_the_limit(
    connection: openeo.Connection,
) -> None:
    more = run_to_end(_job(connection, LARGE, **{"executor-memory": "3g", "executor-memoryOverhead": "1g"}))
    assert more.status() == "finished"
    assert more.describe()["job_options"]["executor-memory"] == "3g"
    capped = run_to_end(_job(connection, HUGE, **{"executor-memory": "64g"}), require_success=False)
    assert capped.status() == "error"
    assert any("had 8,192 MB" in entry["message"] for entry in capped.logs(level="error"))


# -- bands, and real mode ------------------------------------------------------------------------------

BANDED = Simulation(
    time_scale=0.002,
    queue_seconds=1.0,
    memory_default_mb=2048,
    memory_base_mb=500,
    memory_per_km2_mb=40,
    memory_per_month_mb=100,
    memory_per_band_mb=300,
)
"""The model with bands: SMALL over June needs ~900 MB plus 300 per band (2 bands fit, 5 do not)."""


def _graph(bands: list[str] | None = None, *, udp_bands: list[str] | None = None) -> dict[str, Any]:
    load: dict[str, Any] = {"id": "SENTINEL2_L2A", "spatial_extent": SMALL,
                            "temporal_extent": ["2023-06-01", "2023-07-01"]}
    if bands is not None:
        load["bands"] = bands
    graph: dict[str, Any] = {"load": {"process_id": "load_collection", "arguments": load}}
    if udp_bands is not None:
        graph = {"run": {"process_id": "bap_composite", "namespace": "https://example.org/bap.json",
                         "arguments": {"bands": udp_bands, "geometry": {"type": "Polygon", "coordinates": [
                             [[4.40, 51.20], [4.43, 51.20], [4.43, 51.22], [4.40, 51.22], [4.40, 51.20]]]},
                             "temporal_extent": ["2023-06-01", "2023-07-01"]}, "result": True}}
    return {"process_graph": graph}


def test_the_bands_come_from_load_collection_or_the_udp_call_and_cost_memory_each() -> None:
    assert bands_of(_graph(["B04", "B08"])) == 2
    assert bands_of(_graph(udp_bands=["B02", "B03", "B04"])) == 3
    assert bands_of(_graph()) is None
    two, five = extent_of(_graph(["B04", "B08"])), extent_of(_graph(["B02", "B03", "B04", "B08", "B11"]))
    assert (two.bands, five.bands, extent_of(_graph()).band_count) == (2, 5, DEFAULT_BANDS)
    assert memory_needed_mb(five, BANDED) - memory_needed_mb(two, BANDED) == pytest.approx(3 * 300)
    # Off by default: the existing models (and their tests) need what they always did.
    assert memory_needed_mb(five, MODEL) == pytest.approx(memory_needed_mb(two, MODEL))
    # The duration's jitter is seeded on place and time as before: bands leave it alone.
    assert simulated_seconds(two, MODEL, 1, 0) == simulated_seconds(five, MODEL, 1, 0)


def test_a_job_loading_more_bands_than_fit_ends_in_error(tmp_path: Path) -> None:
    with LocalBackend(BackendConfig(state_dir=tmp_path / "state", simulation=BANDED)) as backend:
        connection = openeo.connect(backend.url).authenticate_basic("demo", "demo")

        def job(bands: list[str]) -> BatchJob:
            cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL, bands=bands,
                                              temporal_extent=["2023-06-01", "2023-07-01"])
            return run_to_end(cube.create_job(title=f"{len(bands)} bands"), require_success=False)

        assert job(["B04", "B08"]).status() == "finished"
        heavy = job(["B02", "B03", "B04", "B08", "B11"])
        assert heavy.status() == "error"
        assert any("exceeded its memory limit" in e["message"] for e in heavy.logs(level="error"))


def test_in_real_mode_the_model_refuses_a_job_before_it_computes(tmp_path: Path, udp_dir: Path) -> None:
    config = BackendConfig(state_dir=tmp_path / "state", mode=Mode.REAL, udp_dirs=(udp_dir,),
                           simulation=MODEL)
    with LocalBackend(config) as backend:
        connection = openeo.connect(backend.url).authenticate_basic("demo", "demo")
        large = run_to_end(_job(connection, LARGE), require_success=False)
        assert large.status() == "error"
        errors = [entry["message"] for entry in large.logs(level="error")]
        assert any("exceeded its memory limit" in m and "exit code 137" in m for m in errors), errors
        described = large.describe()
        assert described["costs"] == config.credits_per_job  # the start fee: it computed nothing
        assert not list((tmp_path / "state").rglob(".worker"))  # no worker process was started for it
