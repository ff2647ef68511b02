"""Credits are the sum over every job of a campaign, retries included, and the cap holds with retries.

The local backend bills failed jobs (and jobs canceled while running) for what they used, as CDSE
does; the tests compare the campaign's figure with the costs the backend lists for every job.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from openeo_upscale.backend import BackendConfig, LocalBackend, Simulation
from openeo_upscale.backend.config import Faults
from openeo_upscale.campaign import Campaign, JobRecord, Limits, Polling, RetryPolicy, Store, TaskState, Udp
from tests.campaign.team import audit, backend_jobs, connect, grid
from tests.conftest import MAX_NDVI_URL

S = TaskState
QUICK = Simulation(time_scale=0.002, queue_seconds=1.0)
DEFAULTS = {"temporal_extent": ["2023-05-01", "2023-07-01"]}
POLL = Polling(min_interval=0.05, max_interval=0.3)


@pytest.fixture
def failing(tmp_path: Path, udp_dir: Path) -> Iterator[LocalBackend]:
    """A backend on which a third of the jobs fail (and are billed for what they used)."""
    config = BackendConfig(
        state_dir=tmp_path / "backend",
        udp_dirs=(udp_dir,),
        simulation=QUICK,
        run_slots=6,
        faults=Faults(seed=7, job_failure_rate=0.35),
    )
    with LocalBackend(config) as running:
        yield running


def _campaign(
    store: Store, tmp_path: Path, udp_dir: Path, backend: LocalBackend, count: int, **options: Any
) -> Campaign:
    campaign = Campaign.create(
        store,
        grid(count),
        Udp.from_file(udp_dir / "max_ndvi.json", namespace=MAX_NDVI_URL),
        defaults=DEFAULTS,
        output_dir=tmp_path / "out",
        polling=POLL,
        retry=RetryPolicy(max_attempts=4, backoff_base=0.1, backoff_max=0.5),
        **options,
    )
    campaign.add_backend("local", connect(backend), parallel_jobs=3)
    return campaign


def test_credits_are_the_sum_over_every_job_with_retries(
    failing: LocalBackend, tmp_path: Path, udp_dir: Path, store_target: str
) -> None:
    with Store.open(store_target) as store:
        campaign = _campaign(store, tmp_path, udp_dir, failing, 16)
        summary = campaign.run()
        listed = backend_jobs(failing)
        failed = [job for job in listed if job["status"] == "error"]
        assert failed and all(job["costs"] for job in failed), "failed jobs are billed"
        billed = sum(job["costs"] for job in listed)
        assert summary["credits"] == pytest.approx(billed)
        assert store.credits(campaign.id) == pytest.approx(billed)
        assert summary["jobs"] == len(listed) > summary["tasks"] and summary["retried"] > 0
        # Each task's costs are what all its jobs cost.
        for task in store.all_tasks(campaign.id):
            jobs = store.jobs_of(task.id)
            assert [row.attempt for row in jobs] == list(range(1, task.attempts + 1))
            assert task.costs == pytest.approx(sum(row.costs or 0.0 for row in jobs))
        assert audit(store, campaign.id, {"local": failing}).problems == []


def _reached(rows: list[JobRecord], cap: float) -> datetime | None:
    """When the costs of the ended jobs first reached ``cap`` (None: never)."""
    spent = 0.0
    for row in sorted((r for r in rows if r.finished is not None), key=lambda r: r.finished or r.requested):
        spent += row.costs or 0.0
        if spent >= cap:
            return row.finished
    return None


def test_the_bill_stays_under_the_cap_plus_the_jobs_in_flight(
    failing: LocalBackend, tmp_path: Path, udp_dir: Path, store_target: str
) -> None:
    cap = 6.0
    with Store.open(store_target) as store:
        campaign = _campaign(store, tmp_path, udp_dir, failing, 30, limits=Limits(max_credits=cap))
        summary = campaign.run()
        billed = sum(job["costs"] or 0.0 for job in backend_jobs(failing))
        assert summary["credits"] == pytest.approx(billed)
        assert summary["counts"][S.PENDING.value] > 0 and "credit budget of 6" in (summary["blocked"] or "")
        rows = list(store.ledger(campaign.id))
        moment = _reached(rows, cap)
        if moment is None:
            assert billed < cap
        else:
            # Nothing is launched once the cap is reached: what is billed beyond it is the jobs that
            # were in flight at that moment (the one whose end reached it included).
            flying = [
                r for r in rows if r.requested <= moment and (r.finished is None or r.finished >= moment)
            ]
            assert all(r.requested <= moment for r in rows)
            assert billed <= cap + sum(r.costs or 0.0 for r in flying) + 1e-9
        print(f"\ncap {cap}: billed {billed:.2f} over {len(rows)} jobs; cap reached: {moment is not None}")
