"""``run_udf`` end to end: Python UDFs in real-mode batch jobs through the official client, in each
job's worker process with its memory limit; other runtimes refused by ``POST /validation``."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openeo
import pytest
import rasterio
from openeo.rest import OpenEoApiError

from openeo_upscale.backend import BackendConfig, LocalBackend
from openeo_upscale.backend.config import Mode
from tests.backend.client_helpers import SMALL_BBOX, run_to_end
from tests.helpers import wait_until

PERIOD = ["2023-06-01", "2023-07-01"]

SCALE_BAND = textwrap.dedent("""
    import xarray

    def apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:
        factor = xarray.ones_like(cube["bands"], dtype=float).where(cube["bands"] != context["band"],
                                                                    context["factor"])
        return cube * factor
""")
"""Multiplies the band ``context["band"]`` by ``context["factor"]``."""

MAX_OVER_TIME = textwrap.dedent("""
    import xarray

    def apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:
        return cube.max(dim="t")
""")
"""A reducer over t, as a UDF."""


def real_backend(tmp_path: Path, **settings: Any) -> LocalBackend:
    return LocalBackend(BackendConfig(state_dir=tmp_path / "backend", mode=Mode.REAL, **settings))


@pytest.fixture(scope="module")
def connection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openeo.Connection]:
    with real_backend(tmp_path_factory.mktemp("run-udf")) as backend:
        yield openeo.connect(backend.url).authenticate_basic("demo", "demo")


def load(connection: openeo.Connection) -> Any:
    return connection.load_collection("SENTINEL2_L2A", spatial_extent=SMALL_BBOX, temporal_extent=PERIOD,
                                      bands=["B04", "B08"])


def geotiff(cube: Any, folder: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """The bands and band names of the one GeoTIFF a batch job of `cube` writes."""
    job = run_to_end(cube.create_job(title="run_udf"))
    (asset,) = job.get_results().get_assets()
    with rasterio.open(asset.download(folder / asset.key)) as src:
        assert src.crs.to_epsg() == 32631 and src.res == (10.0, 10.0)
        return src.read(), src.descriptions


def test_a_udf_scaling_a_band_in_a_batch_job_matches_numpy(connection: openeo.Connection,
                                                           tmp_path: Path) -> None:
    plain, names = geotiff(load(connection).reduce_dimension(dimension="t", reducer="max"),
                           tmp_path / "plain")
    by_udf = load(connection).reduce_dimension(dimension="t", reducer=openeo.UDF(MAX_OVER_TIME))
    scaled = by_udf.process("run_udf", data=by_udf, udf=SCALE_BAND, runtime="Python",
                            context={"band": "B08", "factor": 2.5})
    got, got_names = geotiff(scaled, tmp_path / "udf")
    assert names == got_names == ("B04", "B08")
    assert np.isfinite(plain).mean() > 0.9
    np.testing.assert_allclose(got[0], plain[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], plain[1] * 2.5, rtol=1e-6)


def test_a_udf_beyond_the_memory_limit_ends_the_job_in_error_saying_so(tmp_path: Path) -> None:
    greedy = textwrap.dedent("""
        import numpy, xarray

        def apply_datacube(cube: xarray.DataArray, context: dict) -> xarray.DataArray:
            hog = numpy.ones(4 * 1024**3, dtype=numpy.uint8)  # 4 GiB, beyond the job's 1500 MB
            return cube + hog[0]
    """)
    with real_backend(tmp_path, job_memory_limit_mb=1500) as backend:
        connection = openeo.connect(backend.url).authenticate_basic("demo", "demo")
        cube = load(connection)
        job = cube.process("run_udf", data=cube, udf=greedy, runtime="Python").create_job()
        job.start()
        wait_until(lambda: job.status() == "error", "the job to fail", timeout=60)
        messages = [entry["message"] for entry in job.logs(level="error")]
        assert any("exceeded its memory limit of 1500 MB" in m for m in messages), messages
        assert not any("the UDF raised" in m for m in messages), messages
        # The same job with a UDF of modest needs fits in the limit: it was the UDF's allocation.
        modest = cube.process("run_udf", data=cube, udf=SCALE_BAND, runtime="Python",
                              context={"band": "B04", "factor": 2})
        assert run_to_end(modest.create_job()).status() == "finished"


def cwl_graph(connection: openeo.Connection) -> Any:
    cube = load(connection)
    return cube.process("run_udf", data=cube, udf="https://example.org/workflow.cwl", runtime="EOAP-CWL")


REFUSED = "run_udf: runtime 'EOAP-CWL' is not supported by this backend; it runs Python UDFs"


def test_validation_and_job_creation_refuse_a_runtime_other_than_python(
        connection: openeo.Connection) -> None:
    errors = connection.validate_process_graph(cwl_graph(connection))
    assert [error["code"] for error in errors] == ["ProcessParameterInvalid"]
    assert REFUSED in errors[0]["message"]
    with pytest.raises(OpenEoApiError, match=REFUSED):
        cwl_graph(connection).create_job()
    python = load(connection)
    python = python.process("run_udf", data=python, udf=SCALE_BAND, runtime="python", version="3.11")
    assert connection.validate_process_graph(python) == []


def test_simulated_mode_accepts_any_runtime_as_its_catalogue_does(tmp_path: Path) -> None:
    with LocalBackend(BackendConfig(state_dir=tmp_path / "backend")) as backend:
        connection = openeo.connect(backend.url).authenticate_basic("demo", "demo")
        assert connection.validate_process_graph(cwl_graph(connection)) == []


def test_udf_runtimes_lists_python_with_the_openeo_client(connection: openeo.Connection) -> None:
    runtimes = connection.list_udf_runtimes()
    assert list(runtimes) == ["Python"]
    python = runtimes["Python"]
    assert python["type"] == "language" and python["default"] in python["versions"]
    assert python["default"].startswith("3.")
    libraries = python["versions"][python["default"]]["libraries"]
    assert libraries["openeo"]["version"] == openeo.__version__
