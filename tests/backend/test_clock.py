"""The clock given to `create_app` is the time of everything the backend does: jobs, tokens, the
expiry of estimates and of signed asset links."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from openeo_upscale.backend import BackendConfig, LocalBackend, server
from openeo_upscale.backend.api import create_app
from tests.conftest import FAST

DAY = 86400.0
GRAPH = {"process_graph": {"load": {"process_id": "load_collection", "result": True, "arguments": {
    "id": "SENTINEL2_L2A", "spatial_extent": {"west": 5.0, "south": 51.2, "east": 5.01, "north": 51.21},
    "temporal_extent": ["2023-06-01", "2023-07-01"], "bands": ["B04"]}}}}


class ShiftedClock:
    """The wall clock moved by `offset` seconds (it still runs, so the dispatcher keeps working)."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock(30 * DAY)


@pytest.fixture
def backend(tmp_path: Path, clock: ShiftedClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalBackend]:
    monkeypatch.setattr(server, "create_app", functools.partial(create_app, clock=clock))
    with LocalBackend(BackendConfig(state_dir=tmp_path / "backend", simulation=FAST)) as running:
        yield running


def _seconds(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def test_estimates_and_asset_links_expire_by_the_backends_clock(backend: LocalBackend,
                                                                clock: ShiftedClock) -> None:
    api = requests.Session()
    token = api.get(backend.api_url + "/credentials/basic", auth=("demo", "demo"), timeout=10).json()
    api.headers["Authorization"] = f"Bearer basic//{token['access_token']}"
    created = api.post(backend.api_url + "/jobs", json={"process": GRAPH}, timeout=30)
    job = f"{backend.api_url}/jobs/{created.headers['OpenEO-Identifier']}"

    expires = _seconds(api.get(job + "/estimate", timeout=10).json()["expires"])
    assert abs(expires - (clock() + DAY)) < 60

    assert api.post(job + "/results", timeout=10).status_code == 202
    deadline = time.monotonic() + 60
    while api.get(job, timeout=10).json()["status"] != "finished":
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.1)
    href = next(iter(api.get(job + "/results", timeout=10).json()["assets"].values()))["href"]
    link_expires = int(parse_qs(urlparse(href).query)["expires"][0])
    assert abs(link_expires - (clock() + 7 * DAY)) < 60

    assert requests.get(href, timeout=10).status_code == 200
    clock.offset += 8 * DAY  # past the link's expiry by the backend's clock, not by the wall clock
    assert requests.get(href, timeout=10).status_code == 401
