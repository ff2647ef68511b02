"""The local backend answers the official client: the shortest happy path."""

from __future__ import annotations

import openeo

from tests.conftest import ANTWERP_BBOX, MAX_NDVI_URL


def test_max_ndvi_job_finishes(connection: openeo.Connection) -> None:
    cube = connection.datacube_from_process(
        "max_ndvi", namespace=MAX_NDVI_URL, bbox=ANTWERP_BBOX,
        temporal_extent=["2023-05-01", "2023-07-01"])
    job = cube.create_job(title="smoke")
    job.start_and_wait(max_poll_interval=0.2, soft_error_max=0, print=lambda *a: None)
    assert job.status() == "finished"
