"""The dashboard's data: tiles, states and overview read from a small store, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from openeo_upscale.campaign import Store, TaskState
from openeo_upscale.monitor import data
from tests.campaign.conftest import postgres_database, postgres_url  # noqa: F401 - fixtures

S = TaskState
T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _square(x: float, y: float, size: float = 0.05) -> str:
    return (f"POLYGON (({x} {y}, {x + size} {y}, {x + size} {y + size}, {x} {y + size}, {x} {y}))")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Store]:
    sqlite = str(tmp_path / "store.sqlite")
    target = sqlite if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with Store.open(target, clock=clock) as opened:
        yield opened


@pytest.fixture
def campaign(store: Store, clock: Clock) -> int:
    """Three tiles: one done on vito (2 credits), one failed on cdse, one pending."""
    rows = [{"tile_id": f"t{i}", "epsg": 32631, "geometry": _square(4.0 + 0.05 * i, 51.0 + 0.0000012)}
            for i in range(3)]
    cid = store.create_campaign("c", config={"backends": [{"name": "vito", "parallel_jobs": 2}]}, tasks=rows)
    done, failed, _pending = (task.id for task in store.all_tasks(cid))
    clock.advance(60)
    store.transition(done, S.PENDING, S.CREATING, actor="test", backend="vito", attempts=1)
    store.transition(failed, S.PENDING, S.CREATING, actor="test", backend="cdse", attempts=1)
    clock.advance(60)
    store.transition(done, S.CREATING, S.QUEUED, actor="test", job_id="j-1", started=clock())
    store.transition(failed, S.CREATING, S.FAILED, actor="test", reason="backend said no",
                     error="HTTP 500: boom", job_id="j-2")
    clock.advance(600)
    store.transition(done, S.QUEUED, S.RUNNING, actor="test")
    store.transition(done, S.RUNNING, S.FINISHED, actor="test", finished=clock(), costs=2.0)
    store.transition(done, S.FINISHED, S.DOWNLOADING, actor="test")
    clock.advance(60)
    store.transition(done, S.DOWNLOADING, S.DONE, actor="test")
    return cid


def test_tiles_are_rounded_geojson_with_task_ids(store: Store, campaign: int) -> None:
    tiles = data.tiles_geojson(store, campaign)
    assert tiles["type"] == "FeatureCollection"
    ids = [task.id for task in store.all_tasks(campaign)]
    assert [f["id"] for f in tiles["features"]] == ids
    assert [f["properties"]["tile_id"] for f in tiles["features"]] == ["t0", "t1", "t2"]
    first = tiles["features"][0]["geometry"]
    assert first["type"] == "Polygon"
    assert first["coordinates"][0][0] == [4.0, 51.0]  # 51.0000012 rounded to 5 decimals
    assert tiles["bbox"] == [4.0, 51.0, 4.15, 51.05]


def test_tiles_as_centres(store: Store, campaign: int) -> None:
    tiles = data.tiles_geojson(store, campaign, centres=True)
    assert tiles["features"][1]["geometry"] == {"type": "Point", "coordinates": [4.075, 51.025]}


def test_tiles_of_an_empty_campaign(store: Store) -> None:
    cid = store.create_campaign("empty")
    assert data.tiles_geojson(store, cid) == {"type": "FeatureCollection", "features": [], "bbox": None}


def test_states_in_columns(store: Store, campaign: int, clock: Clock) -> None:
    found = data.states(store, campaign, now=clock())
    assert found["full"] is True
    names = [found["states"][i] for i in found["state"]]
    assert names == ["done", "failed", "pending"]
    backends = [found["backends"][i] if i >= 0 else None for i in found["backend"]]
    assert backends == ["vito", "cdse", None]
    assert found["job_id"] == ["j-1", "j-2", None]
    assert found["attempts"] == [1, 1, 0]
    assert found["duration_s"] == [600.0, None, None]
    assert found["costs"] == [2.0, None, None]
    assert found["cursor"] == pytest.approx(clock().timestamp())


def test_states_since_a_cursor_lists_only_changed_tasks(store: Store, campaign: int, clock: Clock) -> None:
    cursor = data.states(store, campaign)["cursor"]
    clock.advance(3600)
    assert data.states(store, campaign, since=cursor + 3600 - 1)["id"] == []
    pending = store.tasks_in(campaign, S.PENDING)[0]
    store.transition(pending.id, S.PENDING, S.CREATING, actor="test", backend="vito")
    changed = data.states(store, campaign, since=cursor + 3600 - 1, now=clock())
    assert changed["full"] is False
    assert changed["id"] == [pending.id]
    assert changed["states"][changed["state"][0]] == "creating"
    assert changed["cursor"] == pytest.approx(clock().timestamp())


def test_active_duration_runs_to_now(store: Store, campaign: int, clock: Clock) -> None:
    pending = store.tasks_in(campaign, S.PENDING)[0]
    store.transition(pending.id, S.PENDING, S.CREATING, actor="test", started=clock())
    clock.advance(90)
    assert data.states(store, campaign, now=clock())["duration_s"][2] == 90.0


def test_overview(store: Store, campaign: int, clock: Clock) -> None:
    found = data.overview(store, campaign, now=clock())
    assert found["campaign"] == "c"
    assert found["tasks"] == 3
    assert found["counts"]["done"] == 1 and found["counts"]["failed"] == 1 and found["counts"]["pending"] == 1
    assert found["colors"]["done"] == "lime"
    assert found["backends"]["vito"] == {"active": 0, "done": 1, "failed": 0, "counts": {"done": 1},
                                         "parallel_jobs": 2}
    assert found["backends"]["cdse"]["failed"] == 1 and found["backends"]["cdse"]["parallel_jobs"] is None
    assert found["credits"] == {"spent": 2.0, "projected": 6.0}
    # one task done in the 720 s since the first event
    assert found["throughput"]["done_per_hour"] == pytest.approx(3600 / 720, rel=0.01)
    assert found["eta"]["remaining"] == 1
    assert found["eta"]["seconds"] == pytest.approx(720, rel=0.01)
    [failure] = found["failures"]
    assert failure["tile_id"] == "t1" and failure["backend"] == "cdse" and failure["job_id"] == "j-2"
    assert failure["error"] == "HTTP 500: boom" and failure["reason"] == "backend said no"


def test_timeline_counts_end_at_the_current_counts(store: Store, campaign: int, clock: Clock) -> None:
    timeline = data.overview(store, campaign, now=clock(), bins=10)["timeline"]
    assert len(timeline["edges"]) == 11
    assert timeline["counts"]["pending"][0] == 3
    final = {state: series[-1] for state, series in timeline["counts"].items()}
    assert {k: v for k, v in final.items() if v} == {"done": 1, "failed": 1, "pending": 1}
    assert sum(timeline["done_per_bin"]) == 1
    for i in range(11):  # every edge accounts for every task
        assert sum(series[i] for series in timeline["counts"].values()) == 3


def test_overview_before_any_event(store: Store, clock: Clock) -> None:
    cid = store.create_campaign("fresh", tasks=[{"tile_id": "a", "geometry": _square(0, 0)}])
    found = data.overview(store, cid, now=clock())
    assert found["counts"]["pending"] == 1
    assert found["timeline"]["edges"] == []
    assert found["eta"]["seconds"] is None and found["credits"]["projected"] is None
    assert found["failures"] == []
