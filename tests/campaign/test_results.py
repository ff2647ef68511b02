"""The download pool against a real local backend and a real store: a store that fails while a
download's outcome is recorded does not strand the task."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import openeo
import pytest

from openeo_upscale.campaign import BackendClient, Downloader, JobStatus, Store, StoreError, TaskState
from openeo_upscale.campaign.store import Launch
from tests.backend.client_helpers import max_ndvi_job, run_to_end
from tests.helpers import wait_until

S = TaskState


class FailingOnce(Store):
    """A store whose first transition to ``done`` fails, as one during a database restart would."""

    failed = False

    def transition(self, task_id: int, from_state: TaskState, to_state: TaskState, **kwargs: Any) -> bool:
        if to_state is S.DONE and not self.failed:
            self.failed = True
            raise StoreError("store operation failed: OperationalError: server closed the connection")
        return super().transition(task_id, from_state, to_state, **kwargs)


@pytest.fixture
def finished_task(tmp_path: Path, connection: openeo.Connection) -> tuple[Store, int, int]:
    """A store holding one task whose job finished on the local backend; returns (store, campaign, task)."""
    store = FailingOnce.open(tmp_path / "campaign.sqlite")
    campaign = store.create_campaign("results", config={"uid": "0123456789ab"})
    store.add_tasks(campaign, [{"tile_id": "t0"}])
    (task,) = store.tasks_in(campaign, S.PENDING)
    job = run_to_end(max_ndvi_job(connection, "results t0 [ou-0123456789ab-1-1]"))
    assert store.claim_launches(
        campaign,
        "local",
        [Launch(task.id, 1, "ou-0123456789ab-1-1", "attempt 1")],
        runner_id=None,
        capacity=1,
    ).task_ids
    assert store.transition(
        task.id, S.CREATING, S.QUEUED, actor="t", job_id=job.job_id, job_status=JobStatus.QUEUED
    )
    assert store.transition(task.id, S.QUEUED, S.FINISHED, actor="t", job_status=JobStatus.FINISHED)
    return store, campaign, task.id


def test_a_download_whose_outcome_the_store_could_not_record_is_done_again(
    finished_task: tuple[Store, int, int], connection: openeo.Connection, tmp_path: Path
) -> None:
    store, campaign, task_id = finished_task
    ended = threading.Event()
    pool = Downloader(
        store, tmp_path / "results", {"local": BackendClient("local", connection)}, on_end=ended.set
    )
    try:
        (claimed,) = store.claim_downloads(campaign, None, ["local"], limit=1, lease_seconds=30)
        assert pool.submit(claimed)
        wait_until(ended.is_set, "the first download attempt")
        assert store.task(task_id).state is S.DOWNLOADING  # the store refused its outcome
        assert pool.release_stranded() == 1 and pool.release_stranded() == 0
        assert store.task(task_id).state is S.FINISHED
        ended.clear()
        (again,) = store.claim_downloads(campaign, None, ["local"], limit=1, lease_seconds=30)
        assert pool.submit(again)
        wait_until(ended.is_set, "the second download attempt")
        task = store.task(task_id)
        assert task.state is S.DONE and task.result_paths
        assert all(Path(path).is_file() for path in task.result_paths)
        reasons = [e.reason for e in store.events_of(task_id)]
        assert "download again: its outcome could not be recorded" in reasons
    finally:
        pool.shutdown()
        store.close()
