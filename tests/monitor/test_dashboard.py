"""The dashboard app on a real uvicorn server at 127.0.0.1: endpoints, page, offline assets."""

from __future__ import annotations

import gzip
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openeo_upscale.campaign import Store, TaskState
from openeo_upscale.cli import main
from openeo_upscale.monitor.dashboard import STATIC, create_app, plotly_js
from tests.monitor.builders import launch, run_job, serving

S = TaskState


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    rows = [{"tile_id": f"t{i}", "geometry": f"POLYGON (({i} 0, {i + 1} 0, {i + 1} 1, {i} 1, {i} 0))"}
            for i in range(4)]
    with Store.open(path) as store:
        cid = store.create_campaign("demo", tasks=rows)
        first = next(iter(store.all_tasks(cid)))
        launch(store, cid, first.id, "local", 1)
        store.transition(first.id, S.CREATING, S.FAILED, actor="test", error="boom", reason="refused")
    return path


@pytest.fixture
def url(store_path: Path) -> Iterator[str]:
    """The dashboard of ``store_path`` served by uvicorn in a thread."""
    with serving(create_app(str(store_path))) as served:
        yield served


def _get(url: str, *, gz: bool = False) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gz else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return response.status, response.headers.get("Content-Type", ""), body


def _json(url: str) -> Any:
    status, kind, body = _get(url)
    assert status == 200 and "json" in kind
    return json.loads(body)


def test_endpoints_answer(url: str) -> None:
    config = _json(url + "/api/config")
    assert config["campaign"] == "demo" and config["tasks"] == 4 and config["tiles_url"] is None
    assert config["colors"]["done"] == "lime"
    tiles = _json(url + "/api/tiles")
    assert [f["properties"]["tile_id"] for f in tiles["features"]] == ["t0", "t1", "t2", "t3"]
    assert _json(url + "/api/tiles?centres=true")["features"][0]["geometry"]["type"] == "Point"
    states = _json(url + "/api/states")
    assert [states["states"][i] for i in states["state"]] == ["failed", "pending", "pending", "pending"]
    assert _json(url + f"/api/states?since={states['cursor'] + 3600}")["id"] == []
    overview = _json(url + "/api/overview")
    assert overview["counts"]["failed"] == 1
    assert overview["failures"][0]["error"] == "boom"
    assert overview["failures"][0]["jobs"] == 1
    assert overview["backends"]["local"]["jobs"] == 1 and overview["credits"]["spent"] == 0.0


def _error(url: str) -> tuple[int, Any]:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=10)
    return caught.value.code, json.loads(caught.value.read())


def test_a_tasks_jobs_and_the_ledger_in_the_overview(store: Store) -> None:
    """Over HTTP, on SQLite and PostgreSQL: every attempt of a task, and the ledger's jobs and credits
    per backend; a task the campaign does not have is a 404 that says so."""
    cid = store.create_campaign("demo", tasks=[{"tile_id": "a"}, {"tile_id": "b"}])
    retried, untouched = (task.id for task in store.all_tasks(cid))
    run_job(store, cid, retried, "alpha", 1, job_id="j-1", end=S.PENDING, job_status="error", costs=0.5,
            error="lost the node")
    run_job(store, cid, retried, "beta", 2, job_id="j-2", end=S.FAILED, job_status="error", costs=0.25,
            error="out of memory")
    other = store.create_campaign("other", tasks=[{"tile_id": "z"}])
    stranger = next(store.all_tasks(other)).id
    with serving(create_app(store, "demo")) as url:
        found = _json(f"{url}/api/tasks/{retried}/jobs")
        assert (found["task_id"], found["tile_id"], found["state"]) == (retried, "a", "failed")
        assert [(j["attempt"], j["backend"], j["job_id"], j["status"], j["costs"], j["error"])
                for j in found["jobs"]] == [(1, "alpha", "j-1", "error", 0.5, "lost the node"),
                                            (2, "beta", "j-2", "error", 0.25, "out of memory")]
        assert _json(f"{url}/api/tasks/{untouched}/jobs")["jobs"] == []
        for missing in (stranger, stranger + 1000):
            assert _error(f"{url}/api/tasks/{missing}/jobs") == (
                404, {"detail": f"no task with id {missing} in campaign 'demo'"})
        overview = _json(url + "/api/overview")
    assert overview["credits"]["spent"] == 0.75
    assert {name: (b["jobs"], b["credits"], b["failed"]) for name, b in overview["backends"].items()} == {
        "alpha": (1, 0.5, 0), "beta": (1, 0.25, 1)}
    [failure] = overview["failures"]
    assert (failure["task_id"], failure["attempts"], failure["jobs"]) == (retried, 2, 2)


def test_large_payloads_are_gzipped(url: str) -> None:
    status, _, body = _get(url + "/api/tiles", gz=True)
    assert status == 200 and json.loads(body)["type"] == "FeatureCollection"


def test_page_and_every_asset_load_from_the_app(url: str) -> None:
    status, kind, page = _get(url + "/")
    assert status == 200 and kind.startswith("text/html")
    html = page.decode()
    for element in ("map", "counts", "timeline", "backends", "credits", "eta", "failures"):
        assert f'id="{element}"' in html
    assets = [a for a in re.findall(r'(?:src|href)="([^"]+)"', html) if a != "data:,"]  # no favicon request
    assert set(assets) == {"/static/style.css", "/static/plotly.min.js", "/static/app.js"}
    for asset in assets:
        status, _, body = _get(url + asset)
        assert status == 200 and body
    assert _get(url + "/static/plotly.min.js")[2] == plotly_js().read_bytes()


def test_our_files_reference_nothing_outside() -> None:
    for path in STATIC.iterdir():
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", path.read_text()), path.name


def test_the_campaign_may_be_named(store_path: Path) -> None:
    with Store.open(store_path) as store:
        store.create_campaign("other")
    create_app(str(store_path), "demo")  # two campaigns: the name picks one


def test_a_missing_store_is_an_error_not_a_new_file(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", str(tmp_path / "nothing.sqlite")]) == 2
    assert "no store" in capsys.readouterr().err
    assert not (tmp_path / "nothing.sqlite").exists()


def test_a_running_campaign_records_its_backends_slots_for_the_dashboard(tmp_path: Path) -> None:
    """`Campaign.start` stores each backend's name and limits, which the overview shows as slots."""
    import openeo

    from openeo_upscale.backend import BackendConfig, LocalBackend
    from openeo_upscale.campaign import Campaign, Polling, Udp
    from openeo_upscale.grid import tiles
    from openeo_upscale.monitor import data
    from openeo_upscale.udp import UDP_DIR
    from tests.conftest import ANTWERP_BBOX, FAST

    with LocalBackend(BackendConfig(state_dir=tmp_path / "backend", simulation=FAST)) as backend:
        udp = Udp.from_file(UDP_DIR / "ndvi_max.json", namespace=f"{backend.api_url}/udp/ndvi_max.json")
        with Campaign.create(tmp_path / "store.db", tiles(ANTWERP_BBOX, 5000).head(2), udp,
                             defaults={"temporal_extent": ["2023-05-01", "2023-06-01"]},
                             output_dir=tmp_path / "out", polling=Polling(min_interval=0.1)) as campaign:
            campaign.add_backend("local", openeo.connect(backend.url).authenticate_basic("demo", "demo"),
                                 parallel_jobs=3)
            assert campaign.run()["counts"]["done"] == 2
            assert campaign.store.campaign(campaign.id)["config"]["backends"] == [
                {"name": "local", "parallel_jobs": 3, "queue_limit": None, "weight": 1.0}]
            overview = data.overview(campaign.store, campaign.id)
            assert overview["backends"]["local"]["parallel_jobs"] == 3


def test_the_geography_near_the_tiles_comes_from_the_app(url: str) -> None:
    """``/api/geography`` answers the view around the tiles' bounds (fitted to the asked aspect) and
    every layer's lines near it, from the package's extract."""
    from openeo_upscale.monitor import geography

    found = _json(url + "/api/geography?bbox=4.35,51.10,4.42,51.15&aspect=2")
    assert list(found["layers"]) == list(geography.LAYERS)
    assert found["styles"] == geography.STYLES
    west, south, east, north = found["view"]
    assert west < 4.35 and east > 4.42 and south < 51.10 and north > 51.15
    assert north - south == pytest.approx(1.0)  # at least a degree around a small campaign
    borders = found["layers"]["borders"]
    assert len(borders["x"]) == len(borders["y"]) and any(x is not None for x in borders["x"])
    assert [found["view"], found["layers"]] == [
        list(geography.view_box((4.35, 51.10, 4.42, 51.15), aspect=2.0)),
        {name: lines.to_dict() for name, lines in geography.near(geography.view_box(
            (4.35, 51.10, 4.42, 51.15), aspect=2.0)).items()}]
    for bad in ("bbox=4,51,3,52", "bbox=4,51,5", "bbox=a,b,c,d", "bbox=0,0,200,1", "bbox=4,51,5,52&aspect=0",
                ""):
        code, body = _error(url + "/api/geography?" + bad)
        assert code == 422, (bad, body)
