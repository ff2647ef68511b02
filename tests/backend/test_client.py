"""Acceptance tests of the local backend, driven over HTTP by the official `openeo` client."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openeo
import pytest
import rasterio
import requests
from openeo.rest import JobFailedException, OpenEoApiError
from openeo.rest.job import BatchJob
from pyproj import Transformer

from openeo_upscale.backend import (
    BackendConfig,
    Faults,
    JobFailureRule,
    LimitPolicy,
    LocalBackend,
    Simulation,
)
from tests.backend.client_helpers import (
    max_ndvi_cube,
    max_ndvi_job,
    run_to_end,
    wait_for_status,
)
from tests.conftest import ANTWERP_BBOX, FAST, MAX_NDVI_URL, require_shared

SLOW = Simulation(time_scale=1.0, queue_seconds=0.0)
"""Jobs that run for minutes and start at once: they stay `running` for as long as a test needs."""

ANTWERP_EPSG = 32631

BackendFactory = Callable[..., LocalBackend]


@pytest.fixture
def make_backend(tmp_path: Path, udp_dir: Path) -> Iterator[BackendFactory]:
    """Start backends with settings of the test's own; all are stopped at the end of the test."""
    with ExitStack() as stack:
        count = 0

        def make(**changes: Any) -> LocalBackend:
            nonlocal count
            count += 1
            config = BackendConfig(state_dir=tmp_path / f"backend-{count}", udp_dirs=(udp_dir,),
                                   simulation=FAST).replace(**changes)
            return stack.enter_context(LocalBackend(config))

        yield make


def _login(backend: LocalBackend) -> openeo.Connection:
    return openeo.connect(backend.url).authenticate_basic("demo", "demo")


@dataclass(frozen=True)
class Finished:
    """A backend shared by the read-only tests of this module, and a finished max_ndvi job on it."""

    backend: LocalBackend
    connection: openeo.Connection
    job: BatchJob


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    config = BackendConfig(state_dir=tmp_path_factory.mktemp("finished"),
                           udp_dirs=(require_shared("udp"),), simulation=FAST)
    with LocalBackend(config) as backend:
        connection = _login(backend)
        job = run_to_end(max_ndvi_job(connection, "finished"))
        yield Finished(backend, connection, job)


def _api_error(call: Callable[[], object]) -> OpenEoApiError:
    with pytest.raises(OpenEoApiError) as caught:
        call()
    return caught.value


# ----- discovery and authentication --------------------------------------------------------------


def test_connect_discovers_api_1_2(backend: LocalBackend) -> None:
    connection = openeo.connect(backend.url)
    assert connection.root_url.rstrip("/") == backend.api_url
    capabilities = connection.capabilities()
    assert capabilities.api_version() == "1.2.0"
    assert capabilities.supports_endpoint("/jobs", "POST")
    assert capabilities.supports_endpoint("/validation", "POST")


def test_authenticate_basic(backend: LocalBackend) -> None:
    connection = openeo.connect(backend.url).authenticate_basic("demo", "demo")
    assert connection.describe_account()["user_id"] == "demo"
    assert connection.list_jobs() == []


def test_authenticate_oidc_client_credentials(backend: LocalBackend) -> None:
    connection = openeo.connect(backend.url).authenticate_oidc_client_credentials(
        client_id="openeo-upscale-local", client_secret="demo-secret", provider_id="local")
    assert connection.auth.bearer.startswith("oidc/local/")
    assert connection.describe_account()["user_id"] == "demo"
    job = max_ndvi_job(connection, "oidc")
    assert job.status() == "created"


def test_wrong_password_is_credentials_invalid(backend: LocalBackend) -> None:
    connection = openeo.connect(backend.url)
    error = _api_error(lambda: connection.authenticate_basic("demo", "wrong"))
    assert (error.http_status_code, error.code) == (403, "CredentialsInvalid")


@pytest.mark.parametrize("path", ["/me", "/jobs"])
def test_unauthenticated_is_401_with_openeo_error(backend: LocalBackend, path: str) -> None:
    response = requests.get(backend.api_url + path, timeout=10)
    assert response.status_code == 401
    body = response.json()
    assert set(body) >= {"id", "code", "message"}
    assert body["code"] == "AuthenticationRequired"
    assert body["id"] and body["message"]
    error = _api_error(lambda: openeo.connect(backend.url).get(path, expected_status=200))
    assert (error.http_status_code, error.code) == (401, "AuthenticationRequired")


# ----- collections -------------------------------------------------------------------------------


def test_list_and_describe_collections(connection: openeo.Connection) -> None:
    assert "SENTINEL2_L2A" in connection.list_collection_ids()
    collection = connection.describe_collection("SENTINEL2_L2A")
    assert collection["id"] == "SENTINEL2_L2A"
    bands = collection["cube:dimensions"]["bands"]["values"]
    assert {"B04", "B08", "SCL"} <= set(bands)
    assert {link["rel"] for link in collection["links"]} >= {"self", "root", "parent"}


def test_file_formats_list_what_the_engine_writes_and_reads(connection: openeo.Connection) -> None:
    formats = connection.list_file_formats()
    assert set(formats["output"]) == {"GTiff", "netCDF", "PNG", "CSV"}
    assert set(formats["input"]) == {"GTiff", "GeoJSON", "Parquet"}
    assert formats["output"]["CSV"]["gis_data_types"] == ["vector"]


# ----- the happy path of a batch job -------------------------------------------------------------


def test_max_ndvi_job_from_namespace_url_finishes(connection: openeo.Connection) -> None:
    cube = max_ndvi_cube(connection)
    job = cube.create_job(title="happy path")
    assert job.status() == "created"
    [call] = [n for n in job.describe()["process"]["process_graph"].values()
              if n["process_id"] == "max_ndvi"]
    assert call["namespace"].endswith("/max_ndvi.json")
    assert call["arguments"]["bbox"] == ANTWERP_BBOX
    job.start()
    assert job.status() in ("queued", "running", "finished")
    run_to_end(job)
    description = job.describe()
    assert (description["status"], description["progress"]) == ("finished", 100)


def test_download_result_is_utm_geotiff(finished: Finished, tmp_path: Path) -> None:
    path = finished.job.get_results().download_file(tmp_path / "result.tif")
    with rasterio.open(path) as dataset:
        assert dataset.crs.to_epsg() == ANTWERP_EPSG
        transform = dataset.transform
        assert transform.a > 0 and transform.e < 0 and transform.b == transform.d == 0
        assert not transform.is_identity
        west, south, east, north = Transformer.from_crs(4326, ANTWERP_EPSG, always_xy=True).transform_bounds(
            ANTWERP_BBOX["west"], ANTWERP_BBOX["south"], ANTWERP_BBOX["east"], ANTWERP_BBOX["north"])
        bounds = dataset.bounds
        assert bounds.left == pytest.approx(west) and bounds.right == pytest.approx(east)
        assert bounds.bottom == pytest.approx(south) and bounds.top == pytest.approx(north)
        data = dataset.read(1)
        assert data.shape == (dataset.height, dataset.width) and data.max() > data.min()


def test_result_asset_has_file_size_and_checksum(finished: Finished) -> None:
    metadata = finished.job.get_results().get_metadata()
    [(name, asset)] = metadata["assets"].items()
    assert name == "openEO.tif"
    assert asset["type"].startswith("image/tiff")
    content = requests.get(asset["href"], timeout=10).content  # signed: no credentials needed
    assert asset["file:size"] == len(content)
    assert asset["file:checksum"] == "1220" + hashlib.sha256(content).hexdigest()


def test_asset_head_and_range(finished: Finished) -> None:
    asset = finished.job.get_results().get_metadata()["assets"]["openEO.tif"]
    size = asset["file:size"]
    head = requests.head(asset["href"], timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == size
    assert head.headers["content-type"].startswith("image/tiff")

    full = requests.get(asset["href"], timeout=10).content
    part = requests.get(asset["href"], headers={"Range": "bytes=10-99"}, timeout=10)
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 10-99/{size}"
    assert part.content == full[10:100]

    unsigned = asset["href"].split("?")[0]
    assert requests.head(unsigned, timeout=10).status_code == 401
    assert requests.get(asset["href"].replace("signature=", "signature=0"), timeout=10).status_code == 401


def test_logs_and_level_filter(finished: Finished) -> None:
    logs = finished.job.logs()
    assert len(logs) >= 4
    messages = [entry.message for entry in logs]
    assert any("created" in m for m in messages) and any("finished" in m for m in messages)
    assert all(entry.level in ("debug", "info", "warning", "error") for entry in logs)
    assert finished.job.logs(level="error") == []
    assert len(finished.job.logs(level=logging.INFO)) == len(logs)
    # the backend filters, not only the client
    raw = finished.connection.get(f"/jobs/{finished.job.job_id}/logs", params={"level": "warning"},
                                  expected_status=200).json()
    assert raw["logs"] == []


def test_usage_and_costs_of_finished_job(finished: Finished) -> None:
    description = finished.job.describe()
    usage = description["usage"]
    assert set(usage) >= {"cpu", "memory", "duration", "input_pixel"}
    for key in ("cpu", "memory", "duration", "input_pixel"):
        assert usage[key]["value"] > 0 and usage[key]["unit"], key
    assert usage["cpu"]["unit"] == "cpu-seconds" and usage["duration"]["unit"] == "seconds"
    assert description["costs"] > 0


# ----- cancel, delete, listing -------------------------------------------------------------------


def test_cancel_running_job(make_backend: BackendFactory) -> None:
    connection = _login(make_backend(simulation=SLOW))
    job = max_ndvi_job(connection, "to cancel")
    job.start()
    wait_for_status(job, "running")
    job.stop()
    assert job.status() == "canceled"
    assert any("canceled" in entry.message for entry in job.logs())
    error = _api_error(lambda: job.get_results().get_metadata())
    assert error.code == "JobNotFinished"


def test_delete_job(connection: openeo.Connection) -> None:
    job = max_ndvi_job(connection, "to delete")
    job.delete()
    error = _api_error(lambda: connection.job(job.job_id).describe())
    assert (error.http_status_code, error.code) == (404, "JobNotFound")
    assert job.job_id not in [j["id"] for j in connection.list_jobs()]


def test_jobs_pagination_follows_next_links(connection: openeo.Connection) -> None:
    created = {max_ndvi_job(connection, f"page {i}").job_id for i in range(7)}
    seen: list[str] = []
    pages = 0
    url: str | None = "/jobs?limit=3"
    while url is not None:
        page = connection.get(url, expected_status=200).json()
        pages += 1
        assert len(page["jobs"]) <= 3
        seen += [j["id"] for j in page["jobs"]]
        url = next((link["href"] for link in page.get("links", []) if link["rel"] == "next"), None)
        assert pages <= 7, "pagination does not end"
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == created


# ----- refused process graphs --------------------------------------------------------------------


def test_missing_udp_parameter_names_node(connection: openeo.Connection) -> None:
    cube = connection.datacube_from_process("max_ndvi", namespace=MAX_NDVI_URL, bbox=ANTWERP_BBOX)
    [node_id] = [n for n, node in cube.flat_graph().items() if node["process_id"] == "max_ndvi"]
    error = _api_error(lambda: cube.create_job(title="incomplete"))
    assert (error.http_status_code, error.code) == (400, "ProcessParameterRequired")
    assert f"'{node_id}'" in error.message and "'temporal_extent'" in error.message
    assert connection.list_jobs() == []


def test_unknown_process_is_400(connection: openeo.Connection) -> None:
    cube = connection.datacube_from_process("no_such_process", x=1)
    error = _api_error(lambda: cube.create_job(title="unknown process"))
    assert (error.http_status_code, error.code) == (400, "ProcessUnsupported")
    assert "'no_such_process'" in error.message


def test_unknown_collection_is_400(connection: openeo.Connection) -> None:
    cube = connection.load_collection("NO_SUCH_COLLECTION", spatial_extent=ANTWERP_BBOX,
                                      temporal_extent=["2023-05-01", "2023-07-01"], fetch_metadata=False)
    error = _api_error(lambda: cube.create_job(title="unknown collection"))
    assert (error.http_status_code, error.code) == (400, "CollectionNotFound")
    assert "'NO_SUCH_COLLECTION'" in error.message


def test_validation_returns_errors(connection: openeo.Connection) -> None:
    assert connection.validate_process_graph(max_ndvi_cube(connection)) == []
    bad = connection.load_collection("NO_SUCH_COLLECTION", spatial_extent=ANTWERP_BBOX,
                                     temporal_extent=["2023-05-01", "2023-07-01"], fetch_metadata=False)
    bad = bad.process("no_such_process", data=bad)
    errors = connection.validate_process_graph(bad)
    codes = {error["code"] for error in errors}
    assert codes == {"CollectionNotFound", "ProcessUnsupported"}
    assert all(error["message"] for error in errors)


# ----- run slots ---------------------------------------------------------------------------------


def test_reject_policy_refuses_second_start(make_backend: BackendFactory) -> None:
    connection = _login(make_backend(simulation=SLOW, limit_policy=LimitPolicy.REJECT, run_slots=1))
    first, second = (max_ndvi_job(connection, f"slot {i}") for i in range(2))
    first.start()
    error = _api_error(second.start)
    assert (error.http_status_code, error.code) == (400, "ConcurrentJobLimit")
    assert error.message == "Job was not started because concurrent job limit (1) is reached."
    assert second.status() == "created"
    assert first.status() in ("queued", "running")


def test_queue_policy_runs_two_and_queues_third(make_backend: BackendFactory) -> None:
    connection = _login(make_backend(simulation=SLOW, run_slots=2))
    jobs = [max_ndvi_job(connection, f"slot {i}") for i in range(3)]
    for job in jobs:
        job.start()
    wait_for_status(jobs[0], "running")
    wait_for_status(jobs[1], "running")
    assert jobs[2].status() == "queued"
    limits = connection.describe_account()["limits"]
    assert limits["running_jobs"] == {"max": 2, "remaining": 0}
    assert limits["concurrent_job_policy"] == "queue"
    # a free slot goes to the queued job
    jobs[0].stop()
    wait_for_status(jobs[2], "running")
    assert connection.describe_account()["limits"]["running_jobs"]["remaining"] == 0


# ----- injected failures -------------------------------------------------------------------------


def test_injected_failure_then_retry_finishes(make_backend: BackendFactory) -> None:
    faults = Faults(job_failures=(JobFailureRule(match="tile-7", attempts=(1,)),))
    connection = _login(make_backend(faults=faults))
    job = max_ndvi_job(connection, "tile-7")
    with pytest.raises(JobFailedException):
        run_to_end(job)
    assert job.status() == "error"
    errors = job.logs(level="error")
    assert [entry.level for entry in errors] == ["error"]
    assert "Injected failure (attempt 1)" in errors[0].message
    assert len(job.logs()) > len(errors)

    run_to_end(job)  # attempt 2
    assert job.status() == "finished"
    assert job.get_results().get_metadata()["assets"]["openEO.tif"]["file:size"] > 0
