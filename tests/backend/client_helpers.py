"""Helpers of the end-to-end tests that drive the local backend with the official client."""

from __future__ import annotations

from typing import Any

import openeo
from openeo.rest.job import BatchJob

from tests.conftest import ANTWERP_BBOX, MAX_NDVI_URL
from tests.helpers import WAIT_SECONDS, wait_until


def wait_for_status(job: BatchJob, *statuses: str, timeout: float = WAIT_SECONDS) -> str:
    """Poll the job until its status is one of `statuses`; returns that status."""
    def reached() -> str | None:
        status = job.status()
        return status if status in statuses else None
    return wait_until(reached, f"job {job.job_id} to become {'/'.join(statuses)}", timeout=timeout)


def quiet(*_args: Any, **_kwargs: Any) -> None:
    """A `print` for `start_and_wait` that prints nothing."""


def run_to_end(job: BatchJob, *, require_success: bool = True) -> BatchJob:
    """Start the job and poll it (at most every 0.2 s) until it ends."""
    return job.start_and_wait(max_poll_interval=0.2, soft_error_max=0, print=quiet,
                              require_success=require_success)


def max_ndvi_cube(connection: openeo.Connection, **arguments: Any) -> Any:
    """The `max_ndvi` UDP by its namespace URL over Antwerp, May-June 2023 unless overridden."""
    arguments = {"bbox": ANTWERP_BBOX, "temporal_extent": ["2023-05-01", "2023-07-01"], **arguments}
    return connection.datacube_from_process("max_ndvi", namespace=MAX_NDVI_URL, **arguments)


def max_ndvi_job(connection: openeo.Connection, title: str, **arguments: Any) -> BatchJob:
    """A created (not started) batch job of the `max_ndvi` UDP."""
    return max_ndvi_cube(connection, **arguments).create_job(title=title)


SMALL_BBOX = {"west": 5.0, "south": 51.2, "east": 5.01, "north": 51.21}
"""A lon/lat box of about one km² in Belgium: jobs over it are quick."""
LOAD_SMALL = {
    "process_id": "load_collection",
    "arguments": {"id": "SENTINEL2_L2A", "spatial_extent": SMALL_BBOX,
                  "temporal_extent": ["2023-06-01", "2023-07-01"], "bands": ["B04", "B08"]},
}
"""A `load_collection` node over `SMALL_BBOX`, June 2023, red and near infrared."""
