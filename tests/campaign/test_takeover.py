"""Taking over a MultiBackendJobManager campaign: the client's own manager runs half of an Antwerp
campaign on the local backend, `openeo-upscale import --take-over` and `run` finish it, every tile
exactly once; and the mapping of each of the manager's statuses, an adopted job that vanished, an
adopted error retried, and an adopted job that was created but never started."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openeo
import pandas as pd
import pytest

from openeo_upscale.backend import BackendConfig, LocalBackend, Simulation
from openeo_upscale.campaign import Campaign, Store, TaskState
from openeo_upscale.campaign.states import JobStatus
from openeo_upscale.campaign.store import Adoption, is_adopted_token
from openeo_upscale.campaign.takeover import (
    ADOPTED_JOB_STATUS,
    TAKEOVER_STATES,
    MbjmStatus,
    adoption_of,
    read_takeover,
    take_over,
)
from openeo_upscale.cli import main
from openeo_upscale.errors import StoreError, UpscaleError
from openeo_upscale.grid import tiles
from tests.conftest import MAX_NDVI_URL, scratch_udps
from tests.helpers import PASSWORD_ENV, USER_ENV, campaign_toml, local_backend_jobs, wait_until

S = TaskState
BBOX = [4.35, 51.10, 4.45, 51.15]
"""Six 5 km tiles around Antwerp."""
TEMPORAL_EXTENT = ["2023-05-01", "2023-07-01"]
STEADY = Simulation(time_scale=0.035, queue_seconds=1.0)
"""About six seconds per 5 km job: long enough that the manager, which polls once a second, is
stopped while two of its jobs are still running."""


@pytest.fixture
def steady_backend(tmp_path: Path, udp_dir: Path) -> Iterator[LocalBackend]:
    config = BackendConfig(state_dir=tmp_path / "backend", udp_dirs=(udp_dir, scratch_udps(tmp_path)),
                           simulation=STEADY, run_slots=4)
    with LocalBackend(config) as running:
        yield running


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_ENV, "demo")
    monkeypatch.setenv(PASSWORD_ENV, "demo")


def _statuses(path: Path) -> Counter[str]:
    """The manager's job table as it is on disk now (empty while a rewrite is caught half-way)."""
    try:
        return Counter(pd.read_csv(path)["status"].astype(str))
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return Counter()


# -- end to end ---------------------------------------------------------------------------------------


MANAGER = """
import json, sys
import openeo
from openeo.extra.job_management import MultiBackendJobManager, ProcessBasedJobCreator, create_job_db
from openeo.extra.job_management import process_based
from openeo.internal.processes.parse import Process
from openeo_upscale.grid import tiles

url, table, udp_file, namespace, root, bbox, temporal_extent = sys.argv[1:]
# ProcessBasedJobCreator downloads the UDP's definition to learn its parameters: read the shared copy
# instead (the namespace sent to the backend is still the URL).
definition = Process.from_dict(json.loads(open(udp_file).read()))
process_based.parse_remote_process_definition = lambda namespace, process_id=None: definition

# The reference notebook: a 5 km grid, one row per tile, the UDP by namespace, two jobs at a time.
frame = tiles(json.loads(bbox), 5000)
frame["title"] = ["max_ndvi " + tile_id for tile_id in frame["tile_id"]]
frame["bbox"] = [{"west": r.west, "south": r.south, "east": r.east, "north": r.north, "crs": int(r.epsg)}
                 for r in frame.itertuples()]
job_db = create_job_db(table, df=frame)
creator = ProcessBasedJobCreator(namespace=namespace, process_id="max_ndvi",
                                 parameter_defaults={"temporal_extent": json.loads(temporal_extent)})
manager = MultiBackendJobManager(poll_sleep=0.2, root_dir=root)
manager.add_backend("local", connection=openeo.connect(url).authenticate_basic("demo", "demo"),
                    parallel_jobs=2)
manager.run_jobs(start_job=creator, job_db=job_db)
"""
"""The reference notebook's job manager code, run in a process of its own so that it can be stopped
for good half-way: `MultiBackendJobManager.stop_job_thread` does not stop its thread while jobs are
active (the loop's condition is ``A or B and not stop``), and the thread it leaves running goes on
launching jobs after the stop."""


def _halfway(manager: subprocess.Popen[bytes], table: Path) -> bool:
    """Whether the manager is frozen with 2 jobs finished and 2 running in its job table on disk.

    It is frozen (SIGSTOP) as soon as the table shows that, then the table is read again: a freeze
    in the middle of a rewrite shows a cut file, and the manager is let go on to try again."""
    if manager.poll() is not None:
        raise AssertionError(f"the job manager ended early (exit code {manager.returncode})")
    if _statuses(table) != HALFWAY:
        return False
    manager.send_signal(signal.SIGSTOP)
    if _statuses(table) == HALFWAY:
        return True
    manager.send_signal(signal.SIGCONT)
    return False


HALFWAY = Counter({"finished": 2, "running": 2, "not_started": 2})


@pytest.mark.usefixtures("credentials")
def test_a_half_finished_job_manager_campaign_is_taken_over_and_finished_once(
        steady_backend: LocalBackend, tmp_path: Path, udp_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert len(tiles(BBOX, 5000)) == 6
    table = tmp_path / "job_tracker.csv"
    script = tmp_path / "manager.py"
    script.write_text(MANAGER)
    with (tmp_path / "manager.log").open("wb") as log:
        manager = subprocess.Popen(
            [sys.executable, str(script), steady_backend.url, str(table), str(udp_dir / "max_ndvi.json"),
             MAX_NDVI_URL, str(tmp_path / "mbjm"), json.dumps(BBOX), json.dumps(TEMPORAL_EXTENT)],
            stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
        try:
            wait_until(lambda: _halfway(manager, table),
                       "the job table to show 2 jobs finished and 2 running", timeout=120)
        finally:
            manager.kill()  # the notebook's kernel dies: nothing rewrites the table any more
            manager.wait()

    taken = pd.read_csv(table)
    assert Counter(taken["status"]) == HALFWAY, taken[["tile_id", "status"]]
    mbjm_jobs = {tile: job for tile, job in zip(taken["tile_id"], taken["id"], strict=True)
                 if isinstance(job, str)}
    assert len(mbjm_jobs) == 4
    assert sorted(job["id"] for job in local_backend_jobs(steady_backend)) == sorted(mbjm_jobs.values())

    store = tmp_path / "campaign.sqlite"
    assert main(["import", str(table), "--take-over", "--store", str(store), "--name", "antwerp",
                 "--udp", str(udp_dir / "max_ndvi.json"), "--namespace", MAX_NDVI_URL,
                 "--defaults", json.dumps({"temporal_extent": TEMPORAL_EXTENT}),
                 "--output-dir", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "took over campaign 'antwerp' with 6 task(s)" in out and "4 job(s) adopted" in out
    assert "include local" in out

    toml = campaign_toml(tmp_path, steady_backend.url, udp_dir, bbox=BBOX, retry="max_attempts = 1")
    assert main(["run", str(toml), "--quiet"]) == 0
    assert main(["results", "verify", str(store)]) == 0
    assert "are present and match their item.json" in capsys.readouterr().out

    # The backend's own list: the manager's 4 jobs and 2 of ours, none created twice.
    jobs = local_backend_jobs(steady_backend)
    assert len(jobs) == 6 and len({job["id"] for job in jobs}) == 6
    assert {job["status"] for job in jobs} == {"finished"}

    with Store.open(store) as opened:
        campaign_id = int(opened.campaign(name="antwerp")["id"])
        tasks = list(opened.all_tasks(campaign_id))
        assert {task.state for task in tasks} == {S.DONE}
        assert sorted(str(task.job_id) for task in tasks) == sorted(job["id"] for job in jobs)
        adopted: dict[str, str] = {}
        for task in tasks:
            events = opened.events_of(task.id)
            first = events[0].reason or ""
            status = taken.set_index("tile_id").loc[task.tile_id, "status"]
            if status == "not_started":
                assert not first.startswith("adopted"), first
                assert not is_adopted_token(task.client_token)
                continue
            # Adopted with the manager's job, which is the one that ran the tile.
            assert task.job_id == mbjm_jobs[task.tile_id]
            assert first.startswith(f"adopted from the job table (job {task.job_id} on backend local, "
                                    f"status {status})"), first
            assert is_adopted_token(task.client_token)
            adopted[task.tile_id] = status
            moves = [(e.from_state, e.to_state) for e in events]
            if status == "finished":
                assert moves[0] == (S.PENDING, S.FINISHED)  # finished by the manager ...
                # ... and downloaded by us
                assert (S.FINISHED, S.DOWNLOADING) in moves and moves[-1] == (S.DOWNLOADING, S.DONE)
            else:
                assert moves[0] == (S.PENDING, S.RUNNING) and (S.RUNNING, S.FINISHED) in moves
        assert Counter(adopted.values()) == {"finished": 2, "running": 2}
        # The ledger holds one row per backend job: the audit "jobs on the backend == rows" holds.
        assert sorted(str(r.job_id) for r in opened.ledger(campaign_id)) == sorted(job["id"] for job in jobs)


# -- the mapping ----------------------------------------------------------------------------------------


def test_every_job_manager_status_has_a_state() -> None:
    assert set(TAKEOVER_STATES) == set(MbjmStatus) == set(ADOPTED_JOB_STATUS)
    assert TAKEOVER_STATES[MbjmStatus.FINISHED] is S.FINISHED
    not_started_jobs = ("created", "queued_for_start", "queued_for_start_failed")
    assert {TAKEOVER_STATES[MbjmStatus(s)] for s in not_started_jobs} == {S.CREATING}
    assert TAKEOVER_STATES[MbjmStatus.ERROR] is TAKEOVER_STATES[MbjmStatus.START_FAILED] is S.FAILED


WITH_JOB = {"id": "j-1", "backend_name": "cdse"}


@pytest.mark.parametrize("status", list(MbjmStatus))
def test_each_status_is_adopted_as_its_state(tmp_path: Path, udp_dir: Path, status: MbjmStatus) -> None:
    cells: dict[str, Any] = {"status": status.value, "running_start_time": "2024-05-01T10:00:00Z"}
    if status not in (MbjmStatus.NOT_STARTED, MbjmStatus.START_FAILED, MbjmStatus.SKIPPED):
        cells |= WITH_JOB
    adoption = adoption_of("t1", cells)
    state = TAKEOVER_STATES[status]
    if state is S.PENDING:
        assert adoption is None
        return
    assert adoption is not None and adoption.state is state
    record = {"tile_id": "t1", "epsg": 32631, "west": 590000, "south": 5660000, "east": 595000,
              "north": 5665000}
    with Campaign.create(tmp_path / "s.sqlite", [record], udp_dir / "max_ndvi.json", namespace=MAX_NDVI_URL,
                         defaults={"temporal_extent": TEMPORAL_EXTENT}, adopt=[adoption]) as campaign:
        (task,) = campaign.store.all_tasks(campaign.id)
        (event,) = campaign.store.events_of(task.id)
        ledger = list(campaign.store.ledger(campaign.id))
    assert task.state is state and (event.from_state, event.to_state) == (S.PENDING, state)
    assert f"status {status.value}" in (event.reason or "")
    if "id" in cells:
        assert task.job_id == "j-1" and task.backend == "cdse"
        assert task.job_status is ADOPTED_JOB_STATUS[status]
        assert [(r.job_id, r.attempt) for r in ledger] == [("j-1", 1)]
        assert task.attempts == task.attempt_floor == 1  # the manager's job is not one of ours
    else:
        assert task.job_id is None and ledger == []
    if state is S.RUNNING:
        assert task.started is not None and task.started.isoformat() == "2024-05-01T10:00:00+00:00"
    if state is S.FAILED:
        assert task.error is not None and ("error" in task.error or "start_failed" in task.error)


@pytest.mark.parametrize("cells, message", [
    ({"status": "running", "backend_name": "cdse"}, "no job id"),
    ({"status": "finished", "id": "j-1"}, "no backend_name"),
    ({"status": "exploded", "id": "j-1", "backend_name": "cdse"}, "unknown job table status"),
])
def test_a_row_that_cannot_be_taken_over_safely_is_refused(cells: dict[str, Any], message: str) -> None:
    with pytest.raises(UpscaleError, match=message):
        adoption_of("t1", cells)


def test_one_job_on_two_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,backend_name,status,tile_id\nj-1,cdse,running,a\nj-1,cdse,running,b\n")
    with pytest.raises(UpscaleError, match="job j-1 on backend cdse is on the rows of tiles a and b"):
        read_takeover(path)


# -- following adopted jobs on a backend ----------------------------------------------------------------


def _campaign(tmp_path: Path, udp_dir: Path, adopt: list[Adoption], count: int = 1) -> Campaign:
    records = [{"tile_id": f"t{i}", "epsg": 32631, "west": 590000 + 5000 * i, "south": 5660000,
                "east": 595000 + 5000 * i, "north": 5665000} for i in range(count)]
    return Campaign.create(tmp_path / "s.sqlite", records, udp_dir / "max_ndvi.json", namespace=MAX_NDVI_URL,
                           defaults={"temporal_extent": TEMPORAL_EXTENT}, output_dir=tmp_path / "results",
                           adopt=adopt)


@pytest.mark.usefixtures("stop_campaigns")
def test_an_adopted_job_the_backend_no_longer_knows_runs_again(
        backend: LocalBackend, connection: openeo.Connection, tmp_path: Path, udp_dir: Path) -> None:
    gone = Adoption("t0", S.RUNNING, "adopted from the job table (test)", backend="local", job_id="j-gone",
                    job_status=JobStatus.RUNNING)
    with _campaign(tmp_path, udp_dir, [gone]) as campaign:
        campaign.add_backend("local", connection, parallel_jobs=1)
        summary = campaign.run()
        (task,) = campaign.store.all_tasks(campaign.id)
        events = campaign.store.events_of(task.id)
    assert summary["counts"]["done"] == 1
    back = [e for e in events if (e.from_state, e.to_state) == (S.RUNNING, S.PENDING)]
    assert len(back) == 1
    assert back[0].reason == ("adopted job j-gone is no longer listed by backend local; the tile will run "
                              "again as a new job")
    (job,) = local_backend_jobs(backend)  # one job of ours, carrying our token
    assert task.job_id == job["id"] != "j-gone" and f"[{task.client_token}]" in job["title"]
    assert task.attempts == 2  # the adopted job, then the first of its own


@pytest.mark.usefixtures("stop_campaigns")
def test_an_adopted_error_fails_and_retry_runs_it(
        backend: LocalBackend, connection: openeo.Connection, tmp_path: Path, udp_dir: Path) -> None:
    adoption = adoption_of("t0", {"status": "error", "id": "j-failed", "backend_name": "local"})
    assert adoption is not None
    with _campaign(tmp_path, udp_dir, [adoption]) as campaign:
        campaign.add_backend("local", connection, parallel_jobs=1)
        (task,) = campaign.store.all_tasks(campaign.id)
        assert task.state is S.FAILED
        assert task.error == "job j-failed failed on backend local (status error in the job table)"
        assert campaign.run()["counts"]["failed"] == 1  # a failed task is left alone ...
        assert local_backend_jobs(backend) == []
        assert campaign.retry() == 1  # ... until `retry`
        assert campaign.run()["counts"]["done"] == 1
        (task,) = campaign.store.all_tasks(campaign.id)
    assert len(local_backend_jobs(backend)) == 1 and task.job_id != "j-failed"


@pytest.mark.usefixtures("stop_campaigns")
def test_an_adopted_job_created_but_not_started_is_started_not_created_again(
        backend: LocalBackend, connection: openeo.Connection, tmp_path: Path, udp_dir: Path) -> None:
    process = {"process_graph": {"run": {
        "process_id": "max_ndvi", "namespace": MAX_NDVI_URL, "result": True,
        "arguments": {"bbox": {"west": 590000, "south": 5660000, "east": 595000, "north": 5665000,
                               "crs": 32631}, "temporal_extent": TEMPORAL_EXTENT}}}}
    created = connection.create_job(process, title="max_ndvi t0")  # what the manager left: no token
    assert created.status() == "created"
    adoption = adoption_of("t0", {"status": "queued_for_start", "id": created.job_id,
                                  "backend_name": "local"})
    assert adoption is not None
    with _campaign(tmp_path, udp_dir, [adoption]) as campaign:
        campaign.add_backend("local", connection, parallel_jobs=1)
        summary = campaign.run()
        (task,) = campaign.store.all_tasks(campaign.id)
        reasons = [e.reason for e in campaign.store.events_of(task.id)]
    assert summary["counts"]["done"] == 1
    assert [job["id"] for job in local_backend_jobs(backend)] == [created.job_id]
    assert task.job_id == created.job_id and "job started" in reasons


def test_take_over_in_python_refuses_an_existing_campaign(tmp_path: Path, udp_dir: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,backend_name,status,tile_id,epsg,west,south,east,north\n"
                    "j-1,local,finished,t0,32631,590000,5660000,595000,5665000\n"
                    ",,not_started,t1,32631,595000,5660000,600000,5665000\n")
    options: dict[str, Any] = {"namespace": MAX_NDVI_URL, "defaults": {"temporal_extent": TEMPORAL_EXTENT}}
    with take_over(tmp_path / "s.sqlite", path, udp_dir / "max_ndvi.json", **options) as campaign:
        counts = campaign.summary()["counts"]
    assert counts["finished"] == 1 and counts["pending"] == 1
    with pytest.raises(UpscaleError, match="already holds a campaign"):
        take_over(tmp_path / "s.sqlite", path, udp_dir / "max_ndvi.json", **options)


TABLE = ("id,backend_name,status,tile_id,epsg,west,south,east,north\n"
         "j-1,local,running,t0,32631,590000,5660000,595000,5665000\n"
         ",,not_started,t1,32631,595000,5660000,600000,5665000\n")


def test_a_plain_import_of_a_table_with_jobs_says_they_run_again(
        tmp_path: Path, udp_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.csv").write_text(TABLE)
    assert main(["import", str(tmp_path / "t.csv"), "--store", str(tmp_path / "s.sqlite"),
                 "--udp", str(udp_dir / "max_ndvi.json"), "--namespace", MAX_NDVI_URL,
                 "--defaults", json.dumps({"temporal_extent": TEMPORAL_EXTENT})]) == 0
    out = capsys.readouterr().out
    assert "note: the table holds 1 job(s)" in out and "--take-over" in out
    with Campaign.open(tmp_path / "s.sqlite") as campaign:
        assert campaign.summary()["counts"]["pending"] == 2  # as before: every row runs


def test_adoptions_are_written_with_the_campaign_in_one_transaction(store: Store) -> None:
    rows = [{"tile_id": f"t{i}"} for i in range(3)]
    adopt = [Adoption("t0", S.FINISHED, "adopted (test)", backend="b", job_id="j-0",
                      job_status=JobStatus.FINISHED, costs=1.5),
             Adoption("t1", S.QUEUED, "adopted (test)", backend="b", job_id="j-1",
                      job_status=JobStatus.QUEUED)]
    campaign = store.create_campaign("c", tasks=rows, adoptions=adopt)
    tasks = {task.tile_id: task for task in store.all_tasks(campaign)}
    assert [tasks[t].state for t in ("t0", "t1", "t2")] == [S.FINISHED, S.QUEUED, S.PENDING]
    ledger = {r.job_id: r for r in store.ledger(campaign)}
    assert ledger.keys() == {"j-0", "j-1"}
    assert ledger["j-0"].finished is not None and ledger["j-1"].finished is None  # j-1 holds a slot
    assert store.spending(campaign).spent == 1.5 and store.spending(campaign).in_flight == 1
    # A tile the campaign lacks writes nothing at all: not the campaign, not its tasks.
    with pytest.raises(StoreError, match="no task for the adopted tile"):
        store.create_campaign("d", tasks=rows, adoptions=[Adoption("nope", S.SKIPPED, "x")])
    assert [c["name"] for c in store.campaigns()] == ["c"]
