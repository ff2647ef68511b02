"""The dashboard's data: tiles, states and overview read from a small store, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from openeo_upscale.campaign import Store, TaskState
from openeo_upscale.monitor import data
from openeo_upscale.monitor.terminal import recent_errors
from tests.monitor.builders import Clock, launch, run_job

S = TaskState


def _square(x: float, y: float, size: float = 0.05) -> str:
    return (f"POLYGON (({x} {y}, {x + size} {y}, {x + size} {y + size}, {x} {y + size}, {x} {y}))")


@pytest.fixture
def campaign(store: Store, clock: Clock) -> int:
    """Three tiles: one done on vito (2 credits), one failed on cdse, one pending."""
    rows = [{"tile_id": f"t{i}", "epsg": 32631, "geometry": _square(4.0 + 0.05 * i, 51.0 + 0.0000012)}
            for i in range(3)]
    cid = store.create_campaign("c", config={"backends": [{"name": "vito", "parallel_jobs": 2}]}, tasks=rows)
    done, failed, _pending = (task.id for task in store.all_tasks(cid))
    clock.advance(60)
    launch(store, cid, done, "vito", 1)
    launch(store, cid, failed, "cdse", 1)
    clock.advance(60)
    store.transition(done, S.CREATING, S.QUEUED, actor="test", job_id="j-1", job_status="queued",
                     started=clock())
    store.transition(failed, S.CREATING, S.FAILED, actor="test", reason="backend said no",
                     error="HTTP 500: boom", job_id="j-2")
    clock.advance(600)
    store.transition(done, S.QUEUED, S.RUNNING, actor="test", job_status="running")
    store.transition(done, S.RUNNING, S.FINISHED, actor="test", finished=clock(), costs=2.0,
                     job_status="finished")
    store.transition(done, S.FINISHED, S.DOWNLOADING, actor="test")
    clock.advance(60)
    store.transition(done, S.DOWNLOADING, S.DONE, actor="test")
    return cid


def _retried_twice(store: Store, clock: Clock, campaign: int) -> int:
    """The failed task of `campaign`, retried: its second job errors on cdse (0.75 credits) and is
    retried at once on vito, where its third job errors too (1 credit); the task fails."""
    failed = store.tasks_in(campaign, S.FAILED)[0].id
    store.transition(failed, S.FAILED, S.PENDING, actor="user", reason="retried by hand")
    clock.advance(60)
    run_job(store, campaign, failed, "cdse", 2, job_id="j-3", end=S.PENDING, started=clock(),
            finished=clock() + timedelta(seconds=300), job_status="error", costs=0.75, error="OOM in the UDF")
    clock.advance(600)
    run_job(store, campaign, failed, "vito", 3, job_id="j-4", end=S.FAILED, started=clock(),
            job_status="error", costs=1.0, error="OOM again\nTraceback ...")
    return failed


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
                                         "parallel_jobs": 2, "jobs": 1, "credits": 2.0}
    assert found["backends"]["cdse"]["failed"] == 1 and found["backends"]["cdse"]["parallel_jobs"] is None
    assert found["backends"]["cdse"]["jobs"] == 1 and found["backends"]["cdse"]["credits"] == 0.0
    assert found["credits"] == {"spent": 2.0, "projected": 6.0}
    # one task done in the 720 s since the first event
    assert found["throughput"]["done_per_hour"] == pytest.approx(3600 / 720, rel=0.01)
    assert found["eta"]["remaining"] == 1
    assert found["eta"]["seconds"] == pytest.approx(720, rel=0.01)
    [failure] = found["failures"]
    assert failure["tile_id"] == "t1" and failure["backend"] == "cdse" and failure["job_id"] == "j-2"
    assert failure["error"] == "HTTP 500: boom" and failure["reason"] == "backend said no"
    assert failure["attempts"] == 1 and failure["jobs"] == 1


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


def test_credits_and_backends_count_every_job_of_the_ledger(store: Store, campaign: int,
                                                             clock: Clock) -> None:
    _retried_twice(store, clock, campaign)
    found = data.overview(store, campaign, now=clock())
    assert found["credits"] == {"spent": 3.75, "projected": 11.25}
    assert found["credits"]["spent"] == store.credits(campaign)
    # No task's current job is on cdse any more, but two of its jobs were: the ledger lists them.
    assert found["backends"]["cdse"] == {"active": 0, "done": 0, "failed": 0, "counts": {},
                                         "parallel_jobs": None, "jobs": 2, "credits": 0.75}
    assert found["backends"]["vito"] == {"active": 0, "done": 1, "failed": 1,
                                         "counts": {"done": 1, "failed": 1},
                                         "parallel_jobs": 2, "jobs": 2, "credits": 3.0}
    [failure] = found["failures"]
    assert (failure["tile_id"], failure["backend"], failure["job_id"]) == ("t1", "vito", "j-4")
    assert failure["attempts"] == 3 and failure["jobs"] == 3


def test_task_jobs_lists_every_attempt(store: Store, campaign: int, clock: Clock) -> None:
    task_id = _retried_twice(store, clock, campaign)
    found = data.task_jobs(store, campaign, task_id)
    assert found is not None
    assert (found["task_id"], found["tile_id"], found["state"]) == (task_id, "t1", "failed")
    keys = ("attempt", "backend", "job_id", "status", "costs", "error")
    rows = [tuple(job[key] for key in keys) for job in found["jobs"]]
    assert rows == [
        (1, "cdse", "j-2", None, None, "HTTP 500: boom"),
        (2, "cdse", "j-3", "error", 0.75, "OOM in the UDF"),
        (3, "vito", "j-4", "error", 1.0, "OOM again\nTraceback ..."),
    ]
    first, second, third = found["jobs"]
    assert first["started"] is None and first["duration_s"] is None and first["finished"] is not None
    assert second["duration_s"] == 300.0
    assert second["requested"] <= second["created"] <= second["started"] < second["finished"]
    assert third["finished"] == pytest.approx(clock().timestamp())


def test_task_jobs_of_an_unknown_task_or_one_of_another_campaign(store: Store, campaign: int) -> None:
    other = store.create_campaign("other", tasks=[{"tile_id": "x"}])
    [stranger] = store.all_tasks(other)
    assert data.task_jobs(store, campaign, stranger.id) is None
    assert data.task_jobs(store, campaign, stranger.id + 1000) is None
    assert data.task_jobs(store, other, stranger.id) == {"task_id": stranger.id, "tile_id": "x",
                                                         "state": "pending", "jobs": []}


def test_recent_errors_are_the_latest_first_one_line_each(store: Store, campaign: int, clock: Clock) -> None:
    assert recent_errors(store, campaign) == ["t1 [failed, cdse, j-2]: HTTP 500: boom"]
    _retried_twice(store, clock, campaign)
    clock.advance(60)
    done = store.tasks_in(campaign, S.DONE)[0].id
    assert store.update(done, S.DONE, error="late note")
    assert recent_errors(store, campaign) == ["t0 [done, vito, j-1]: late note",
                                              "t1 [failed, vito, j-4]: OOM again"]
    assert recent_errors(store, campaign, limit=1) == ["t0 [done, vito, j-1]: late note"]
