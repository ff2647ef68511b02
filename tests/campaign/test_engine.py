"""The campaign engine end to end: real local backends over HTTP, the official client, a real store.

Each test builds its backends from `BackendConfig` (simulated mode, fast jobs) and runs a campaign
of max_ndvi tiles near Antwerp through `Campaign`, then checks the store *and* the backends: every
job the backends know carries a token of a recorded attempt, and no token appears twice.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import openeo
import pytest

from openeo_upscale.backend import Simulation
from openeo_upscale.backend.config import Faults, JobFailureRule, LimitPolicy, RateLimit
from openeo_upscale.campaign import (
    BackendSettings,
    Campaign,
    JobStatus,
    Limits,
    ParameterError,
    Polling,
    RetryPolicy,
    Store,
    TaskState,
    Udp,
)
from openeo_upscale.campaign.catalog import load_collection
from openeo_upscale.errors import ConfigError
from tests.campaign.conftest import BRISK
from tests.campaign.team import (
    DEFAULTS,
    POLL,
    backend_jobs,
    check_jobs_match_attempts,
    connect,
    done_once,
    grid,
    max_ndvi,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.usefixtures("stop_campaigns")

S = TaskState
PACKAGE_UDPS = Path(__file__).resolve().parents[2] / "openeo_upscale" / "udp"








# -- the acceptance cases -----------------------------------------------------------------------------


def test_200_tasks_over_two_backends_each_done_once(backends: Any, udp_dir: Path, tmp_path: Path,
                                                      store_target: str) -> None:
    """200 tasks, parallel_jobs 3 and 2, on SQLite and on PostgreSQL: all done, jobs == attempts."""
    one, two = backends("one", simulation=BRISK), backends("two", simulation=BRISK)
    with Store.open(store_target) as store:
        campaign = Campaign.create(store, grid(200), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("one", connect(one), parallel_jobs=3)
        campaign.add_backend("two", connect(two), parallel_jobs=2)
        summary = campaign.run()

        assert summary["counts"]["done"] == 200, summary
        collection = load_collection(Path(summary["collection"]))
        assert len(list(collection.get_items(recursive=True))) == 200
        assert {name: b["counts"].get("done", 0) > 0 for name, b in summary["backends"].items()} == {
            "one": True, "two": True}
        done_once(store, campaign)
        check_jobs_match_attempts(store, campaign, one, two)
        assert all(t.attempts == 1 for t in store.all_tasks(campaign.id))
        requests = sum(b["requests"] for b in summary["backends"].values())
        # create + start + results + one asset, plus the shared listings and /me reads.
        assert requests / 200 <= 7, summary


def test_faults_every_task_done_or_failed_with_reason(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    """10% 5xx, 429 bursts, 20% job failures, 1% dropped connections, lost POST /jobs answers."""
    faults = Faults(seed=7, http_error_rate={"*": 0.1}, drop_rate={"*": 0.01},
                    lost_response_rate={"POST /jobs": 0.05}, job_failure_rate=0.2,
                    rate_limit=RateLimit(capacity=20, per_second=20.0))
    one = backends("one", faults=faults, simulation=BRISK)
    two = backends("two", faults=Faults(**{**vars(faults), "seed": 8}), simulation=BRISK)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(200), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL,
                                   retry=RetryPolicy(backoff_base=0.2, backoff_max=2.0))
        campaign.add_backend("one", connect(one), parallel_jobs=3)
        campaign.add_backend("two", connect(two), parallel_jobs=2)
        summary = campaign.run()

        counts = summary["counts"]
        assert counts["done"] + counts["failed"] == 200, summary
        assert counts["done"] >= 190, summary
        for task in store.tasks_in(campaign.id, S.FAILED):
            assert task.error and "failed on the backend" in task.error and task.attempts == 3
        done_once(store, campaign)
        check_jobs_match_attempts(store, campaign, one, two)
        retried = [t for t in store.all_tasks(campaign.id) if t.attempts > 1]
        assert retried, "20% job failures should have caused retries"
        adopted = [e for t in store.all_tasks(campaign.id) for e in store.events_of(t.id)
                   if e.reason and "adopted" in e.reason]
        assert adopted, "lost POST /jobs answers should have been resolved by adoption"


def test_lost_create_answers_are_adopted_not_repeated(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    """Every answer to POST /jobs is lost: each job is found by its token, none created twice."""
    lossy = backends("lossy", faults=Faults(lost_response_rate={"POST /jobs": 1.0}))
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(6), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("lossy", connect(lossy), parallel_jobs=3)
        assert campaign.run()["counts"]["done"] == 6
        check_jobs_match_attempts(store, campaign, lossy)
        for task in store.all_tasks(campaign.id):
            reasons = [event.reason for event in store.events_of(task.id)]
            assert "adopted the job carrying the task's token" in reasons


def test_backend_rejection_fails_that_task_only(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    """Our copy of the UDP declares a parameter the backend's does not know: the backend refuses the
    task that sets it, with its own message; the other tasks run."""
    local = backends("local")
    udp = max_ndvi(udp_dir)
    drifted = Udp(udp.process_id, udp.namespace,
                  [*udp.parameters, {"name": "sharpen", "schema": {"type": "boolean"}, "optional": True}],
                  udp.definition)
    tiles_ = grid(4).copy()
    tiles_["sharpen"] = [None, True, None, None]
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, tiles_, drifted, defaults=DEFAULTS, output_dir=tmp_path / "out",
                                   polling=POLL)
        campaign.add_backend("local", connect(local), parallel_jobs=2)
        summary = campaign.run()
        assert summary["counts"]["done"] == 3 and summary["counts"]["failed"] == 1, summary
        (failed,) = store.tasks_in(campaign.id, S.FAILED)
        assert failed.tile_id == tiles_.iloc[1]["tile_id"]
        assert failed.error is not None and "does not support parameter 'sharpen'" in failed.error
        assert failed.attempts == 1 and failed.job_id is None


def test_stop_returns_within_two_seconds_and_start_resumes(backends: Any, udp_dir: Path,
                                                             tmp_path: Path) -> None:
    slow = backends("slow", simulation=Simulation(time_scale=0.02, queue_seconds=1.0))
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(5), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("slow", connect(slow), parallel_jobs=3)
        campaign.start()
        wait_until(lambda: store.counts(campaign.id)[S.RUNNING] > 0, "a running job", timeout=30)
        began = time.monotonic()
        assert campaign.stop(timeout=2.0)
        assert time.monotonic() - began < 2.0
        assert not campaign.running
        active = store.counts(campaign.id)
        assert active[S.RUNNING] + active[S.QUEUED] > 0, "jobs stay on the backend after stop()"

        campaign.start()
        assert campaign.wait(timeout=120)
        assert store.counts(campaign.id)[S.DONE] == 5
        check_jobs_match_attempts(store, campaign, slow)


def test_hostile_asset_name_is_refused_and_nothing_escapes(backends: Any, udp_dir: Path,
                                                           tmp_path: Path) -> None:
    hostile = backends("hostile", faults=Faults(hostile_asset_name="../../evil"))
    out = tmp_path / "campaign" / "out"
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(2), max_ndvi(udp_dir), defaults=DEFAULTS, output_dir=out,
                                   polling=POLL)
        campaign.add_backend("hostile", connect(hostile))
        summary = campaign.run()
        assert summary["counts"]["failed"] == 2, summary
        for task in store.tasks_in(campaign.id, S.FAILED):
            assert task.error is not None and "unsafe asset name '../../evil'" in task.error
    assert not [p for p in tmp_path.rglob("evil*")]
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


@pytest.mark.parametrize("defaults, rule", [({}, "required"),
                                            ({"temporal_extent": "2023-05-01"}, "type")])
def test_invalid_campaign_is_refused_before_any_job(backends: Any, udp_dir: Path, tmp_path: Path,
                                                    defaults: dict[str, Any], rule: str) -> None:
    local = backends("local")
    with Store.open(tmp_path / "campaign.sqlite") as store:
        with pytest.raises(ParameterError) as caught:
            Campaign.create(store, grid(3), max_ndvi(udp_dir), defaults=defaults, output_dir=tmp_path / "out")
        assert "temporal_extent" in str(caught.value) and rule in str(caught.value)
        assert "32631_" in str(caught.value), "the message names the task"
        assert store.campaigns() == []
    assert backend_jobs(local) == []


def test_job_options_of_the_campaign_a_backend_and_a_tile_are_merged(backends: Any, udp_dir: Path,
                                                                      tmp_path: Path) -> None:
    local = backends("local")
    tiles_frame = grid(2)
    tiles_frame["job_options"] = [{"executor-memory": "8g"}, None]
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, tiles_frame, max_ndvi(udp_dir), defaults=DEFAULTS, polling=POLL,
                                   output_dir=tmp_path / "out",
                                   job_options={"executor-memory": "2g", "python-memory": "1g"})
        campaign.add_backend("local", connect(local), parallel_jobs=2, job_options={"python-memory": "3g"})
        assert campaign.run()["counts"]["done"] == 2
    connection = connect(local)
    options = sorted(sorted(connection.job(job["id"]).describe()["job_options"].items())
                     for job in connection.list_jobs())
    assert options == [[("executor-memory", "2g"), ("python-memory", "3g")],
                       [("executor-memory", "8g"), ("python-memory", "3g")]]


@pytest.mark.parametrize(("options", "message"), [
    ("not json", "tile 32631_.*job_options is not JSON"),
    ('["executor-memory"]', "tile 32631_.*job_options must be an object"),
    ({"x": float("nan")}, "tile 32631_.*JSON values only"),
])
def test_bad_job_options_of_a_tile_are_refused_before_any_job(backends: Any, udp_dir: Path, tmp_path: Path,
                                                              options: Any, message: str) -> None:
    local = backends("local")
    tiles_frame = grid(2)
    tiles_frame["job_options"] = [options, None]
    with Store.open(tmp_path / "campaign.sqlite") as store:
        with pytest.raises(ConfigError, match=message):
            Campaign.create(store, tiles_frame, max_ndvi(udp_dir), defaults=DEFAULTS,
                            output_dir=tmp_path / "o")
        assert store.campaigns() == []
    with pytest.raises(ConfigError, match="backend local: job_options must be an object"):
        BackendSettings("local", job_options=[1])  # type: ignore[arg-type]
    assert backend_jobs(local) == []


# -- capacity, limits and operations ---------------------------------------------------------------------


def test_concurrent_job_limit_lowers_capacity_without_failing(backends: Any, udp_dir: Path,
                                                              tmp_path: Path) -> None:
    """The backend refuses starts beyond one running job; /me is not read, so the engine learns it."""
    strict = backends("strict", run_slots=1, limit_policy=LimitPolicy.REJECT)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(5), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL,
                                   limits=Limits(me_refresh=None, capacity_cooldown=60.0),
                                   retry=RetryPolicy(backoff_base=0.1, backoff_max=0.5))
        campaign.add_backend("strict", connect(strict), parallel_jobs=3)
        summary = campaign.run()
        assert summary["counts"]["done"] == 5, summary
        check_jobs_match_attempts(store, campaign, strict)
        assert all(t.attempts == 1 for t in store.all_tasks(campaign.id))


def test_capacity_advertised_in_me_is_used(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    strict = backends("strict", run_slots=1, limit_policy=LimitPolicy.REJECT)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(3), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("strict", connect(strict), parallel_jobs=3)
        summary = campaign.run()
        assert summary["counts"]["done"] == 3
        # With /me saying one job at a time, no start was ever refused: 3 jobs, no start retries.
        assert summary["backends"]["strict"]["requests"] <= 3 * 4 + 3 + 40


def test_job_errors_are_retried_then_fail_with_the_logs(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    chosen = grid(3)
    unlucky, flaky = chosen.iloc[0]["tile_id"], chosen.iloc[1]["tile_id"]
    rules = (JobFailureRule(match=unlucky, attempts=(1, 2, 3), message="Out of memory"),
             JobFailureRule(match=flaky, attempts=(1,), message="Executor lost"))
    local = backends("local", faults=Faults(job_failures=rules))
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, chosen, max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("local", connect(local), parallel_jobs=3)
        failed: list[str] = []
        campaign.on_task_failed = lambda task: failed.append(task.tile_id)
        summary = campaign.run()
        assert summary["counts"] == {**summary["counts"], "done": 2, "failed": 1}
        by_tile = {t.tile_id: t for t in store.all_tasks(campaign.id)}
        assert by_tile[unlucky].attempts == 3 and by_tile[unlucky].state is S.FAILED
        assert by_tile[unlucky].error is not None and "Out of memory" in by_tile[unlucky].error
        assert by_tile[unlucky].job_status is JobStatus.ERROR
        assert by_tile[flaky].attempts == 2 and by_tile[flaky].state is S.DONE
        assert failed == [unlucky]
        check_jobs_match_attempts(store, campaign, local)

        # retry() gives a fresh allowance; the backend fails attempt 4 no more.
        assert campaign.retry() == 1
        assert campaign.run()["counts"]["done"] == 3
        assert store.task(by_tile[unlucky].id).attempts == 4


def test_max_runtime_cancels_and_fails(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    slow = backends("slow", simulation=Simulation(time_scale=0.02, queue_seconds=1.0))
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(1), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL,
                                   limits=Limits(max_runtime=0.3), retry=RetryPolicy(max_attempts=2))
        campaign.add_backend("slow", connect(slow))
        summary = campaign.run()
        assert summary["counts"]["failed"] == 1
        (task,) = store.all_tasks(campaign.id)
        assert task.attempts == 2 and task.error is not None and "max_runtime" in task.error
        statuses = {job["status"] for job in backend_jobs(slow)}
        assert statuses == {"canceled"}


def test_credit_budget_stops_launching(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    local = backends("local")
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(6), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL, limits=Limits(max_credits=1.0))
        campaign.add_backend("local", connect(local), parallel_jobs=1)
        summary = campaign.run()
        # One job costs about 0.6 credits: a second one would not fit under the cap of 1.
        assert summary["counts"]["done"] == 1 and summary["counts"]["pending"] == 5, summary
        assert summary["credits"] <= 1.0
        assert summary["blocked"] is not None and "credit budget of 1" in summary["blocked"]
        assert summary["credits"] == pytest.approx(sum(job["costs"] for job in backend_jobs(local)))


def test_pinned_tasks_run_only_on_their_backend(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    one, two = backends("one"), backends("two")
    chosen = grid(6).copy()
    chosen["backend"] = ["two", "two", "two", None, None, None]
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, chosen, max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("one", connect(one), parallel_jobs=2, weight=5.0)
        campaign.add_backend("two", connect(two), parallel_jobs=2)
        assert campaign.run()["counts"]["done"] == 6
        for task in store.all_tasks(campaign.id):
            if task.pinned_backend:
                assert task.backend == "two"
        check_jobs_match_attempts(store, campaign, one, two)


def test_cancel_cancels_jobs_on_the_backend(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    slow = backends("slow", simulation=Simulation(time_scale=0.05, queue_seconds=1.0))
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(4), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("slow", connect(slow), parallel_jobs=2)
        campaign.start()
        wait_until(lambda: store.counts(campaign.id)[S.RUNNING] > 0, "a running job", timeout=30)
        assert campaign.cancel() == 4
        assert store.counts(campaign.id)[S.CANCELED] == 4
        wait_until(lambda: all(job["status"] == "canceled" for job in backend_jobs(slow)), "canceled jobs",
                   timeout=10)


def test_open_resumes_and_tasks_frame(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    local = backends("local")
    path = tmp_path / "campaign.sqlite"
    created = Campaign.create(path, grid(3), max_ndvi(udp_dir), name="antwerp", defaults=DEFAULTS,
                              output_dir=tmp_path / "out", polling=POLL)
    created.close()
    again = Campaign.create(path, grid(3), max_ndvi(udp_dir), name="antwerp", defaults=DEFAULTS)
    assert again.id == created.id
    again.close()
    with Campaign.open(path) as campaign:
        campaign.add_backend("local", connect(local))
        assert campaign.run()["counts"]["done"] == 3
        frame = campaign.tasks()
        assert len(frame) == 3 and frame.crs.to_epsg() == 4326
        assert set(frame["state"]) == {"done"} and frame.geometry.notna().all()


@pytest.mark.parametrize("auth", ["oidc-connection", "basic-factory"])
def test_expired_tokens_are_renewed_during_a_run(backends: Any, udp_dir: Path, tmp_path: Path,
                                                 auth: str) -> None:
    """Access tokens live 1.5 s while the run takes longer: an OIDC connection refreshes its token
    (the client's own renewal), a connection factory is called again for basic auth."""
    short = backends("short", token_ttl=1.5, simulation=Simulation(time_scale=0.01, queue_seconds=1.0))
    if auth == "oidc-connection":
        connection: Any = openeo.connect(short.url).authenticate_oidc_client_credentials(
            client_id="openeo-upscale-local", client_secret="demo-secret", provider_id="local")
    else:
        connection = lambda: connect(short)  # noqa: E731 - the factory is the point here
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(6), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL)
        campaign.add_backend("short", connection, parallel_jobs=2)
        began = time.monotonic()
        assert campaign.run()["counts"]["done"] == 6
        assert time.monotonic() - began > 3.0, "the run must outlive a couple of tokens"
        check_jobs_match_attempts(store, campaign, short)


def test_each_tick_lists_a_backend_at_most_once(backends: Any, udp_dir: Path, tmp_path: Path) -> None:
    """Driving `Scheduler.tick` by hand: never more than one GET /jobs walk per backend per tick,
    and a tick before any listing is due makes no request at all."""
    one, two = backends("one"), backends("two")
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(6), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=Polling(min_interval=0.2))
        campaign.add_backend("one", connect(one), parallel_jobs=2)
        campaign.add_backend("two", connect(two), parallel_jobs=1)
        listings: Counter[str] = Counter()
        for name, client in campaign.backends.items():
            real = client.list_jobs

            def counted(enough: Any = None, _real: Any = real, _name: str = name) -> Any:
                listings[_name] += 1
                return _real(enough)

            client.list_jobs = counted  # type: ignore[method-assign]

        def requests() -> int:
            return sum(client.requests for client in campaign.backends.values())

        scheduler = campaign.scheduler()
        quiet = 0
        planned = threading.Event()  # never set: its wait() is the runner's sleep until the next tick
        deadline = time.monotonic() + 60
        try:
            while not (result := scheduler.tick()).idle:
                assert time.monotonic() < deadline, "the campaign did not finish"
                assert max(listings.values(), default=0) <= 1, listings
                listings.clear()
                if result.next_tick is not None and result.next_tick > 0.1:
                    before = requests()
                    scheduler.tick()
                    quiet += requests() == before
                    listings.clear()
                planned.wait(min(result.next_tick if result.next_tick is not None else 0.05, 1.0))
        finally:
            scheduler.close()
        assert quiet > 0
        assert store.counts(campaign.id)[S.DONE] == 6


def test_udp_by_process_id_on_the_backend_and_from_a_file_without_namespace(backends: Any,
                                                                          tmp_path: Path) -> None:
    """A UDP stored on one backend is read back by id; a campaign stores it on every backend."""
    one, two = backends("one"), backends("two")
    document = json.loads((PACKAGE_UDPS / "ndvi_max.json").read_text())
    connect(one).save_user_defined_process(document["id"], document["process_graph"],
                                           parameters=document["parameters"])
    udp = Udp.from_backend(connect(one), document["id"])
    assert udp.namespace is None and udp.parameter_names == [p["name"] for p in document["parameters"]]
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(4), udp, defaults=DEFAULTS, output_dir=tmp_path / "out",
                                   polling=POLL)
        campaign.add_backend("one", connect(one), parallel_jobs=2)
        campaign.add_backend("two", connect(two), parallel_jobs=2)
        summary = campaign.run()
        assert summary["counts"]["done"] == 4, summary
        assert all(b["counts"].get("done") for b in summary["backends"].values())
    assert [p["id"] for p in connect(two).list_user_defined_processes()] == [document["id"]]


def test_a_failed_job_is_retried_on_another_backend_when_asked(backends: Any, udp_dir: Path,
                                                               tmp_path: Path) -> None:
    chosen = grid(2)
    broken = backends("broken", faults=Faults(job_failures=(
        JobFailureRule(match="32631", attempts=tuple(range(1, 10)), message="Node lost"),)))
    healthy = backends("healthy")
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, chosen, max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", polling=POLL,
                                   retry=RetryPolicy(other_backend=True))
        campaign.add_backend("broken", connect(broken), parallel_jobs=2, weight=10.0)
        campaign.add_backend("healthy", connect(healthy), parallel_jobs=2)
        assert campaign.run()["counts"]["done"] == 2
        for task in store.all_tasks(campaign.id):
            assert task.backend == "healthy"
            starts = [e.reason for e in store.events_of(task.id) if e.to_state is S.CREATING
                      and e.from_state is S.PENDING]
            if task.attempts > 1:
                assert starts[0] == "attempt 1 on backend broken"
                assert all(reason == "attempt 2 on backend healthy" for reason in starts[1:])
        assert any(t.attempts == 2 for t in store.all_tasks(campaign.id))
        check_jobs_match_attempts(store, campaign, broken, healthy)
