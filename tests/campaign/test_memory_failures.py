"""Jobs that run out of memory: recognised in the backend's error logs, and with
``on_memory_error = "more_memory"`` retried with more executor memory, which the backend's own job
metadata shows; with ``"fail"`` (the default) retried unchanged until the attempts run out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from openeo_upscale.backend import Simulation
from openeo_upscale.campaign import Campaign, RetryPolicy, Store, TaskState
from openeo_upscale.campaign.failures import is_memory_error, more_memory
from openeo_upscale.errors import ConfigError
from tests.campaign.team import (
    DEFAULTS,
    POLL,
    backend_jobs,
    check_jobs_match_attempts,
    connect,
    grid,
    max_ndvi,
)

# A 5 km tile over two months needs 500 + 60 * 25 + 100 * 2 = 2200 MB: more than the 2048 MB a job
# gets by default, less than 3072.
TIGHT = Simulation(
    time_scale=0.002,
    queue_seconds=1.0,
    memory_default_mb=2048,
    memory_limit_mb=8192,
    memory_base_mb=500,
    memory_per_km2_mb=60,
    memory_per_month_mb=100,
)


def test_memory_errors_are_recognised_in_the_wording_of_several_backends() -> None:
    assert is_memory_error(["Job exceeded its memory limit: it needed about 2,200 MB and had 2,048 MB"])
    assert is_memory_error(
        [
            "ExecutorLostFailure (executor 3 exited caused by one of the running tasks) "
            "Reason: Container killed by YARN for exceeding memory limits."
        ]
    )
    assert is_memory_error(["java.lang.OutOfMemoryError: Java heap space"])
    assert is_memory_error(["Process exited with exit code 137 (OOMKilled)"])
    assert not is_memory_error(["Collection 'X' does not exist.", "NoDataAvailable"])


def test_more_memory_grows_by_the_factor_up_to_the_maximum() -> None:
    policy = RetryPolicy(on_memory_error="more_memory", memory_factor=1.5, memory_start="2g", memory_max="8g")
    assert more_memory(None, policy) == "3072m"
    assert more_memory({"executor-memory": "3072m"}, policy) == "4608m"
    assert more_memory({"executor-memory": "6g"}, policy) == "8192m"
    assert more_memory({"executor-memory": "8g"}, policy) is None
    for bad in ({"on_memory_error": "split-ish"}, {"memory_factor": 1.0}, {"memory_max": "lots"}):
        with pytest.raises(ConfigError):
            RetryPolicy(**bad)  # type: ignore[arg-type]


def test_more_memory_retries_carry_larger_job_options_and_finish(
    backends: Any, udp_dir: Path, tmp_path: Path
) -> None:
    local = backends("local", simulation=TIGHT)
    policy = RetryPolicy(on_memory_error="more_memory", backoff_base=0.1, backoff_max=0.5)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(
            store,
            grid(4),
            max_ndvi(udp_dir),
            defaults=DEFAULTS,
            output_dir=tmp_path / "out",
            polling=POLL,
            retry=policy,
        )
        campaign.add_backend("local", connect(local), parallel_jobs=4)
        summary = campaign.run()
        assert summary["counts"]["done"] == 4, summary
        check_jobs_match_attempts(store, campaign, local)
        for task in store.all_tasks(campaign.id):
            assert task.attempts == 2 and task.job_options == {"executor-memory": "3072m"}, task
            reasons = [event.reason or "" for event in store.events_of(task.id)]
            assert any("retrying with executor-memory 3072m" in r for r in reasons), reasons
    jobs = backend_jobs(local)
    assert len(jobs) == 8
    memories = sorted(
        (connect(local).job(j["id"]).describe().get("job_options") or {}).get("executor-memory", "-")
        for j in jobs
    )
    assert memories == ["-"] * 4 + ["3072m"] * 4  # what the backend itself recorded for each job


def test_by_default_a_memory_failure_is_retried_unchanged_until_the_attempts_run_out(
    backends: Any, udp_dir: Path, tmp_path: Path
) -> None:
    local = backends("local", simulation=TIGHT)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(
            store,
            grid(2),
            max_ndvi(udp_dir),
            defaults=DEFAULTS,
            output_dir=tmp_path / "out",
            polling=POLL,
            retry=RetryPolicy(max_attempts=2, backoff_base=0.1, backoff_max=0.5),
        )
        campaign.add_backend("local", connect(local), parallel_jobs=2)
        summary = campaign.run()
        assert summary["counts"]["failed"] == 2, summary
        for task in store.tasks_in(campaign.id, TaskState.FAILED):
            assert task.attempts == 2 and task.job_options is None
            assert task.error and "exceeded its memory limit" in task.error
    assert all(not connect(local).job(j["id"]).describe().get("job_options") for j in backend_jobs(local))
