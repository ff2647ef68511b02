"""The task store on SQLite and PostgreSQL: schema, atomic transitions, races, bulk insert."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from openeo_upscale.campaign import SCHEMA_VERSION, JobStatus, Store, StoreError, TaskState
from openeo_upscale.errors import UpscaleError

P = TaskState


def _campaign_with_tasks(store: Store, n: int) -> tuple[int, list[int]]:
    campaign = store.create_campaign("antwerp", config={"parallel_jobs": 2}, udp={"id": "bap_composite"})
    store.add_tasks(campaign, ({"tile_id": f"31N_{i}", "epsg": 32631, "west": 600000.0 + i * 5000,
                                "south": 5660000.0, "east": 605000.0 + i * 5000, "north": 5665000.0,
                                "geometry": "POLYGON ((0 0, 1 0, 1 1, 0 0))",
                                "parameters": {"tile": i}} for i in range(n)))
    ids = [task.id for task in store.tasks_in(campaign, P.PENDING)]
    return campaign, ids


def test_schema_version_newer_than_code_is_refused(store: Store, store_target: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_info SET version = :v"), {"v": SCHEMA_VERSION + 1})
    store.close()
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}.*version {SCHEMA_VERSION}"):
        Store.open(store_target)
    assert issubclass(StoreError, UpscaleError)


def test_transition_updates_row_and_appends_event(store: Store) -> None:
    _, (task_id, *_) = _campaign_with_tasks(store, 2)
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert store.transition(task_id, P.PENDING, P.CREATING, actor="w1", reason="claimed",
                            client_token="c1-t1-a1", attempts=1)
    assert store.transition(task_id, P.CREATING, P.QUEUED, actor="w1", backend="cdse", job_id="j-1",
                            job_status=JobStatus.QUEUED, started=started, usage={"cpu": 1})
    task = store.task(task_id)
    assert (task.state, task.job_status, task.job_id, task.backend) == (
        P.QUEUED, JobStatus.QUEUED, "j-1", "cdse")
    assert (task.client_token, task.attempts, task.started, task.usage) == (
        "c1-t1-a1", 1, started, {"cpu": 1})
    assert task.parameters == {"tile": 0} and task.updated.tzinfo is not None
    events = store.events_of(task_id)
    assert [(e.from_state, e.to_state, e.actor, e.job_status, e.reason) for e in events] == [
        (P.PENDING, P.CREATING, "w1", None, "claimed"),
        (P.CREATING, P.QUEUED, "w1", JobStatus.QUEUED, None),
    ]


def test_failed_event_insert_rolls_back_the_update(store: Store) -> None:
    _, (task_id, *_) = _campaign_with_tasks(store, 1)
    with pytest.raises(StoreError):
        # The UPDATE succeeds, then the event breaks NOT NULL: the transaction must undo both.
        store.transition(task_id, P.PENDING, P.CREATING, actor=None)  # type: ignore[arg-type]
    assert store.task(task_id).state == P.PENDING
    assert store.events_of(task_id) == []


def test_lost_race_returns_false_and_writes_nothing(store: Store) -> None:
    _, (task_id, *_) = _campaign_with_tasks(store, 1)
    assert store.transition(task_id, P.PENDING, P.CREATING, actor="w1")
    assert not store.transition(task_id, P.PENDING, P.CREATING, actor="w2", job_id="stolen")
    task = store.task(task_id)
    assert (task.state, task.job_id) == (P.CREATING, None)
    assert [e.actor for e in store.events_of(task_id)] == ["w1"]


def test_transition_not_in_table_raises(store: Store) -> None:
    _, (task_id, *_) = _campaign_with_tasks(store, 1)
    with pytest.raises(StoreError, match="pending -> done is not allowed"):
        store.transition(task_id, P.PENDING, P.DONE, actor="w1")
    with pytest.raises(StoreError, match="password"):
        store.transition(task_id, P.PENDING, P.CREATING, actor="w1", password="x")
    assert store.events_of(task_id) == []


def test_bulk_add_and_counts(store: Store) -> None:
    campaign = store.create_campaign("big")
    t0 = time.perf_counter()
    added = store.add_tasks(campaign, ({"tile_id": f"t{i}", "parameters": {"i": i}} for i in range(10_000)))
    elapsed = time.perf_counter() - t0
    assert added == 10_000
    assert elapsed < 5, f"adding 10k tasks took {elapsed:.1f} s"
    first = store.tasks_in(campaign, [P.PENDING], limit=3)
    assert [t.tile_id for t in first] == ["t0", "t1", "t2"]
    for task in first[:2]:
        assert store.transition(task.id, P.PENDING, P.SKIPPED, actor="user")
    counts = store.counts(campaign)
    assert counts == {**dict.fromkeys(TaskState, 0), P.PENDING: 9_998, P.SKIPPED: 2}
    assert store.counts(campaign + 1) == dict.fromkeys(TaskState, 0)


def test_duplicate_tile_id_adds_nothing(store: Store) -> None:
    campaign = store.create_campaign("dup")
    with pytest.raises(StoreError, match=f"campaign {campaign}"):
        store.add_tasks(campaign, [{"tile_id": "a"}, {"tile_id": "b"}, {"tile_id": "a"}])
    assert store.counts(campaign)[P.PENDING] == 0
    other = store.create_campaign("other")
    assert store.add_tasks(other, [{"tile_id": "a"}]) == 1  # tile ids are unique per campaign only


def test_concurrent_transitions_exactly_one_wins(store: Store) -> None:
    _, ids = _campaign_with_tasks(store, 10)
    for task_id in ids:
        barrier = threading.Barrier(2)
        outcomes: dict[str, bool] = {}
        errors: list[BaseException] = []

        def claim(actor: str, task_id: int = task_id, barrier: threading.Barrier = barrier,
                  outcomes: dict[str, bool] = outcomes, errors: list[BaseException] = errors) -> None:
            try:
                barrier.wait(timeout=10)
                outcomes[actor] = store.transition(task_id, P.PENDING, P.CREATING, actor=actor)
            except BaseException as exc:  # surfaced in the main thread below
                errors.append(exc)

        threads = [threading.Thread(target=claim, args=(name,)) for name in ("w1", "w2")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        assert sorted(outcomes.values()) == [False, True]
        winner = next(actor for actor, won in outcomes.items() if won)
        assert [e.actor for e in store.events_of(task_id)] == [winner]


def test_secret_like_columns_do_not_exist(store: Store) -> None:
    inspector = sa.inspect(store.engine)
    columns = {c["name"] for table in inspector.get_table_names() for c in inspector.get_columns(table)}
    secret_words = ("password", "secret", "access", "refresh", "bearer")
    assert not {c for c in columns if any(w in c for w in secret_words)}


def test_reopened_sqlite_file_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "campaign.sqlite"
    with Store.open(path) as store:
        campaign, ids = _campaign_with_tasks(store, 3)
        store.transition(ids[0], P.PENDING, P.CREATING, actor="w1", client_token="tok")
        before = (store.task(ids[0]), store.events_of(ids[0]), store.counts(campaign))
    with Store.open(path) as store:
        assert (store.task(ids[0]), store.events_of(ids[0]), store.counts(campaign)) == before
        assert store.dialect == "sqlite"
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_unreachable_or_unsupported_targets_raise_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported store"):
        Store.open("mysql://nobody@127.0.0.1/x")
    with pytest.raises(StoreError, match="in-memory"):
        Store.open("sqlite://")
    with pytest.raises(StoreError, match="cannot open the store"):
        Store.open("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    """A runner and a dashboard creating the same new SQLite store at the same moment."""
    import subprocess
    import sys

    path = tmp_path / "raced.sqlite"
    script = ("import sys; from openeo_upscale.campaign import Store; "
              "Store.open(sys.argv[1]).close()")
    processes = [subprocess.Popen([sys.executable, "-c", script, str(path)], stderr=subprocess.PIPE)
                 for _ in range(6)]
    errors = [p.communicate(timeout=60)[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, errors
    with Store.open(path) as store:
        assert store.campaigns() == []
