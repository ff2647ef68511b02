"""Several runner processes on one campaign, against real local backends over HTTP.

Each test starts `openeo-upscale run` processes through `tests.campaign.runner_child`, which holds
them until all are ready and then lets them go at the same moment, and checks the outcome against
the backends' own job lists (`tests.campaign.team.audit`), not only against our bookkeeping.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openeo_upscale.backend import LocalBackend, Simulation
from openeo_upscale.campaign import Leasing, Store, TaskState
from tests.campaign.team import Team, audit
from tests.helpers import wait_until

S = TaskState

pytestmark = [pytest.mark.slow]


@pytest.fixture
def team_of(tmp_path: Path, udp_dir: Path) -> Iterator[Any]:
    made: list[Team] = []

    def build(store: str, backends: dict[str, tuple[LocalBackend, int]], **options: Any) -> Team:
        team = Team(tmp_path, store, backends, udp_dir, **options)
        made.append(team)
        return team

    yield build
    for team in made:
        team.close()


def _campaign_id(store: Store, name: str) -> int:
    found = [c for c in store.campaigns() if c["name"] == name]
    assert len(found) == 1, f"campaigns named {name!r}: {found}"
    return int(found[0]["id"])


def _done_once(store: Store, campaign_id: int) -> None:
    tasks = list(store.all_tasks(campaign_id))
    assert Counter(t.state for t in tasks) == {S.DONE: len(tasks)}
    for task in tasks:
        reached = [e for e in store.events_of(task.id) if e.to_state is S.DONE]
        assert len(reached) == 1, task
        assert task.result_paths and all(Path(p).is_file() for p in task.result_paths)


@pytest.mark.parametrize("wait", [False, True], ids=["refused", "waiting"])
def test_three_runs_at_once_on_a_new_sqlite_store(
    backends: Any, team_of: Any, tmp_path: Path, wait: bool
) -> None:
    one = backends("one", run_slots=8)
    team = team_of(str(tmp_path / "campaign.sqlite"), {"one": (one, 4)}, tasks=12)
    runs = team.start(3, *(["--wait"] if wait else []))
    codes = team.wait(runs, timeout=120)
    if sorted(codes) != ([0, 0, 0] if wait else [0, 2, 2]):
        print("\n\n".join(team.tail(i) for i in range(3)))  # in full with the failure (the message is cut)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign_id = _campaign_id(store, "team")
        if wait:
            assert codes == [0, 0, 0], [team.tail(i) for i in range(3)]
            waited = [run for run in runs if "waiting for runner" in team.output_of(run)]
            assert len(waited) >= 1, [team.tail(i) for i in range(3)]
        else:
            assert sorted(codes) == [0, 2, 2], [team.tail(i) for i in range(3)]
            for run, code in zip(runs, codes, strict=True):
                if code == 2:
                    text = team.output_of(run)
                    assert "is being run by runner" in text and "pid" in text and "host" in text, text
                    assert "a SQLite store allows one runner at a time" in text
        _done_once(store, campaign_id)
        found = audit(store, campaign_id, {"one": one})
        assert found.problems == []
        assert found.jobs == len(found.ledger) == 12


def test_three_runs_at_once_on_a_new_postgresql_store(backends: Any, team_of: Any, postgres_url: str) -> None:
    """Three backends for three runners: the leases spread, so that each launches and polls one.

    The first runner to register takes every lease and hands one over per heartbeat (2 s) to a
    runner holding two fewer, so each job runs for about 2.5 s: the campaign lasts long enough
    (about 15 s) for all three to hold one, on a quick machine too."""
    slow = Simulation(time_scale=0.015, queue_seconds=1.0)
    started = {name: backends(name, run_slots=8, simulation=slow) for name in ("one", "two", "three")}
    team = team_of(postgres_url, {name: (backend, 2) for name, backend in started.items()}, tasks=36)
    runs = team.start(3)
    codes = team.wait(runs, timeout=120)
    if codes != [0, 0, 0]:
        print("\n\n".join(team.tail(i) for i in range(3)))  # in full with the failure (the message is cut)
    assert codes == [0, 0, 0], [team.tail(i) for i in range(3)]
    with Store.open(postgres_url) as store:
        campaign_id = _campaign_id(store, "team")
        runners = store.runners(campaign_id)
        assert len(runners) == 3 and all(r.stopped is not None for r in runners), runners
        assert {r.pid for r in runners} == {run.pid for run in runs}
        # All three worked on it: each launched jobs (recorded their tokens) on a backend it held.
        launched = Counter(row.runner_id for row in store.ledger(campaign_id))
        assert set(launched) == {r.id for r in runners}, launched
        _done_once(store, campaign_id)
        found = audit(store, campaign_id, started)
        assert found.problems == []
        assert found.jobs == len(found.ledger) == 36


# -- three runners, faults, two of them killed ----------------------------------------------------------

KILL_SEED = 20261201
LEASE = 2.0
"""Seconds a runner may stay silent before the others take its work over (short, for the test)."""
HEARTBEAT = Leasing(lease_seconds=LEASE).heartbeat_seconds
SLACK = 0.5
"""Seconds allowed for the store's and this test's own polling."""


def _peak_jobs(store: Store, campaign_id: int) -> dict[str, int]:
    """Per backend, the most jobs the campaign held at once, from the ledger's intervals: a job holds
    its slot from the moment its token is recorded until it ended for the campaign."""
    moments: dict[str, list[tuple[Any, int]]] = {}
    now = store.now()
    for row in store.ledger(campaign_id):
        moments.setdefault(row.backend, []).append((row.requested, 1))
        moments[row.backend].append((row.finished or now, -1))
    peaks = {}
    for backend, changes in moments.items():
        level = peak = 0
        for _, change in sorted(changes, key=lambda item: (item[0], item[1])):  # ends before starts
            level += change
            peak = max(peak, level)
        peaks[backend] = peak
    return peaks


def _taken_over(store: Store, campaign_id: int, runner_id: int) -> bool:
    """The killed runner is marked stopped, another live runner holds every backend it held, and no
    download is still claimed by it."""
    dead = store.runner(runner_id)
    if dead is None or dead.stopped is None:
        return False
    live = {r.id for r in store.runners(campaign_id, live_within=LEASE)}
    holders = store.lease_holders(campaign_id)
    if any(holder not in live for holder, _ in holders.values()):
        return False
    return not [t for t in store.tasks_in(campaign_id, S.DOWNLOADING) if t.claimed_by == runner_id]


def test_three_runners_with_faults_two_killed(backends: Any, team_of: Any, postgres_url: str) -> None:
    """200 tasks, two faulty backends, three runners; two are SIGKILLed while they hold work."""
    import random
    import signal
    import time

    from openeo_upscale.backend.config import Faults
    from openeo_upscale.campaign.mosaic import verify_results

    rng = random.Random(KILL_SEED)

    def faulty(name: str, seed: int) -> LocalBackend:
        return backends(
            name,
            run_slots=8,
            faults=Faults(
                seed=seed,
                http_error_rate={
                    "GET /jobs": 0.05,
                    "POST /jobs/{job_id}/results": 0.05,
                    "GET /jobs/{job_id}/results": 0.05,
                    "GET /jobs/{job_id}/logs": 0.1,
                },
                lost_response_rate={"POST /jobs": 0.15},
                job_failure_rate=0.1,
            ),
        )

    one, two = faulty("one", 1), faulty("two", 2)
    slots = {"one": 4, "two": 3}
    team = team_of(
        postgres_url, {"one": (one, slots["one"]), "two": (two, slots["two"])}, tasks=200, lease_seconds=LEASE
    )
    # Each on its own (pretended) machine: the others see its heartbeat, not its process, so a
    # killed one is taken over when its lease runs out.
    runs = team.start(3, hosts=["machine-a", "machine-b", "machine-c"])
    store = Store.open(postgres_url)
    try:
        campaign_id = int(
            wait_until(lambda: next((c["id"] for c in store.campaigns()), None), "the campaign")
        )
        takeovers = []
        alive = list(runs)
        for _ in range(2):
            done_before = store.counts(campaign_id)[S.DONE]
            more = rng.randint(15, 45)
            wait_until(
                lambda n=done_before + more: store.counts(campaign_id)[S.DONE] >= n,
                f"{more} more done tasks",
                timeout=120,
            )
            by_pid = {r.pid: r for r in store.runners(campaign_id, live_within=LEASE)}
            holders = {holder for holder, _ in store.lease_holders(campaign_id).values()}
            # Kill a runner that holds work: a backend lease first, then any with a download or lease.
            busy = [run for run in alive if run.pid in by_pid and by_pid[run.pid].id in holders]
            victim = rng.choice(busy or alive)
            runner_id = by_pid[victim.pid].id
            victim.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            wait_until(
                lambda rid=runner_id: _taken_over(store, campaign_id, rid),
                f"runner {runner_id}'s work taken over",
                timeout=30,
                interval=0.02,
            )
            takeovers.append(time.monotonic() - killed_at)
            alive.remove(victim)
            victim.wait()
            assert victim.returncode == -signal.SIGKILL
        codes = team.wait(alive, timeout=240)
        print(f"\ntakeover after a SIGKILL: {', '.join(f'{t:.2f} s' for t in takeovers)} (lease {LEASE} s)")
        assert set(codes) <= {0, 1}, [team.tail(i) for i in range(3)]
        # The lease runs out, then the next heartbeat of another runner takes the work over.
        assert all(LEASE - HEARTBEAT <= t <= LEASE + HEARTBEAT + SLACK for t in takeovers), takeovers

        tasks = list(store.all_tasks(campaign_id))
        states = Counter(t.state for t in tasks)
        assert set(states) <= {S.DONE, S.FAILED} and len(tasks) == 200, states
        assert all(t.error for t in tasks if t.state is S.FAILED)
        assert codes == ([1] if states[S.FAILED] else [0])
        peaks = _peak_jobs(store, campaign_id)
        print(f"states {dict(states)}; most jobs at once per backend {peaks} (parallel_jobs {slots})")
        assert all(peaks[name] <= slots[name] for name in peaks), peaks
        found = audit(store, campaign_id, {"one": one, "two": two})
        assert found.problems == []
        assert found.jobs == sum(1 for row in found.ledger if row.job_id is not None)
        assert verify_results(store, campaign_id) == []
        billed = sum(job["costs"] or 0.0 for jobs in found.listed.values() for job in jobs)
        assert store.credits(campaign_id) == pytest.approx(billed)
        assert not list(team.output.glob("**/*.part"))
        retried = store.retried_tasks(campaign_id)
        adopted = sum("adopted" in (e.reason or "") for t in tasks for e in store.events_of(t.id))
        print(f"{found.jobs} jobs, {retried} tasks retried, {adopted} jobs adopted by their token")
        assert adopted > 0 and retried > 0
    finally:
        store.close()


def test_a_download_left_by_a_killed_runner_resumes_in_another(
    backends: Any, team_of: Any, postgres_url: str
) -> None:
    import signal

    one = backends("one", run_slots=8)
    team = team_of(postgres_url, {"one": (one, 2)}, tasks=2, lease_seconds=LEASE)
    (first,) = team.start(1, hold_in_download=600.0, hosts=["machine-a"])
    store = Store.open(postgres_url)
    try:
        # A .part with bytes in it: the file exists a moment before its first piece is written.
        part = wait_until(lambda: next((p for p in team.output.glob("**/*.part") if p.stat().st_size), None),
                          "a partial download with bytes in it", timeout=60)
        size = part.stat().st_size
        (second,) = team.start(1, hosts=["machine-b"], verbose=True)
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert team.wait([second], timeout=60) == [0], team.tail(1)
        campaign_id = _campaign_id(store, "team")
        _done_once(store, campaign_id)
        resumed = [
            e.reason
            for t in store.all_tasks(campaign_id)
            for e in store.events_of(t.id)
            if "download interrupted" in (e.reason or "")
        ]
        assert resumed, "the killed runner's download was not taken over"
        assert size > 0 and not part.exists() and part.with_name(part.name.removesuffix(".part")).is_file()
        assert f"at byte {size}" in team.output_of(second), "the second runner did not resume the .part"
        from openeo_upscale.campaign.mosaic import verify_results

        assert verify_results(store, campaign_id) == []
    finally:
        store.close()


def test_a_run_waiting_for_the_holder_gives_up_on_ctrl_c(
    backends: Any, team_of: Any, tmp_path: Path, udp_dir: Path
) -> None:
    import signal

    from openeo_upscale.campaign import Campaign, Leases, Udp
    from tests.campaign.team import grid
    from tests.conftest import MAX_NDVI_URL

    one = backends("one", run_slots=8)
    team = team_of(str(tmp_path / "campaign.sqlite"), {"one": (one, 2)}, tasks=2)
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(
            store,
            grid(2),
            Udp.from_file(udp_dir / "max_ndvi.json", namespace=MAX_NDVI_URL),
            name="team",
            defaults={"temporal_extent": ["2023-05-01", "2023-07-01"]},
            output_dir=team.output,
        )
        holder = Leases(store, campaign.id, ["one"], name="campaign 'team'")
        me = holder.join()
        try:
            (run,) = team.start(1, "--wait")
            wait_until(lambda: "waiting for runner" in team.output_of(run), "the run to wait", timeout=60)
            assert f"runner {me.id} (pid {me.pid} on host {me.host}" in team.output_of(run)
            run.send_signal(signal.SIGINT)
            assert team.wait([run], timeout=30) == [130]
            assert "nothing was started" in team.output_of(run)
            assert store.counts(campaign.id)[S.PENDING] == 2 and store.ledger_summary(campaign.id) == {}
        finally:
            holder.leave()
