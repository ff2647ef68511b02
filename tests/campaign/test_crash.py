"""Crash safety: the runner process killed with SIGKILL at five moments and restarted each time.

Two local backends stay up in this process; the runner is `tests/campaign/crash_child.py` in its own
process. Each kill waits for a condition in the store, on the backends or on disk (never a fixed
sleep), then adds a small seeded random delay:

- ``before-post``: a task is `creating` (its client token recorded) and no backend has its job yet;
- ``job-posted``: a task is `creating` without a job id while its backend already lists a job with
  its client token: the answer to ``POST /jobs`` arrived but is not recorded yet;
- ``downloading``: a result download has written part of its ``.part`` file;
- ``creating``: any task is `creating` (before, during or after ``POST /jobs``);
- ``progress``: a random number of further events were recorded.

The child widens the first three windows (see its `--hold-*` options) only in the runs that aim at
them; the final run has no holds. After the last restart the campaign must end by itself with every
task `done`, one backend job per recorded attempt (no duplicate, no orphan), every result file on
disk and no `.part` file left.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openeo
import pytest
import shapely

from openeo_upscale.backend import BackendConfig, LocalBackend
from openeo_upscale.campaign.campaign import Campaign
from openeo_upscale.campaign.creator import Udp
from openeo_upscale.campaign.scheduler import client_token, token_of
from openeo_upscale.campaign.states import TaskState
from openeo_upscale.campaign.store import Store
from openeo_upscale.grid import tiles
from tests.conftest import FAST, MAX_NDVI_URL

S = TaskState
ROOT = Path(__file__).resolve().parents[2]

SEED = 20240917
"""Seeds the order of the kill kinds and the delays; the run is otherwise as timing makes it."""
BBOX = (4.2, 51.0, 4.6, 51.3)
"""49 tiles of 5 km."""
TEMPORAL_EXTENT = ["2023-05-01", "2023-07-01"]
BACKENDS = ("alpha", "beta")
RUN_SLOTS = 3
"""Jobs each backend runs at once (and the campaign's parallel_jobs there)."""
HOLD_BEFORE_CREATE = 0.15
"""Seconds the child waits between recording a task's client token and POST /jobs."""
HOLD_AFTER_CREATE = 0.15
"""Seconds the child waits between the answer to POST /jobs and recording the job id."""
HOLD_IN_DOWNLOAD = 0.3
"""Seconds the child waits in the middle of each result download."""
KILL_DEADLINE = 20.0
"""Seconds a kill condition may take to come true."""
FINAL_DEADLINE = 60.0
"""Seconds the last, undisturbed run may take to end the campaign."""
POLL = 0.005

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@dataclass
class Landing:
    """Where a kill left the campaign, seen after the child is dead."""

    kind: str
    after: float
    """Seconds since the child started."""
    events: int
    unrecorded: list[str] = field(default_factory=list)
    """Tokens of jobs on a backend whose task has not recorded the job id."""
    unposted: list[str] = field(default_factory=list)
    """Tokens of tasks in `creating` with no job on the backend yet."""
    downloading: int = 0
    parts: dict[str, int] = field(default_factory=dict)
    """`.part` files left, with their sizes."""


class Harness:
    """The backends, the campaign's store and the child process, seen from the test."""

    def __init__(self, tmp_path: Path, udp_dir: Path, backends: Mapping[str, LocalBackend]) -> None:
        self.tmp_path = tmp_path
        self.udp_dir = udp_dir
        self.backends = backends
        self.store_path = tmp_path / "campaign.sqlite"
        self.output = tmp_path / "results"
        self.connections = {
            name: openeo.connect(b.url).authenticate_basic("demo", "demo") for name, b in backends.items()
        }
        self.runs = 0
        self.child: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        campaign = Campaign.create(
            self.store_path,
            tiles(shapely.box(*BBOX), 5000),
            Udp.from_file(udp_dir / "max_ndvi.json", namespace=MAX_NDVI_URL),
            name="crash",
            defaults={"temporal_extent": TEMPORAL_EXTENT},
            output_dir=self.output,
        )
        self.campaign_id, self.uid = campaign.id, campaign.uid
        campaign.close()
        self.store = Store.open(self.store_path)

    def close(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
            self.child.wait()
        self.store.close()

    # the child --------------------------------------------------------------------------------

    def start(
        self,
        *,
        hold_before_create: float = 0.0,
        hold_after_create: float = 0.0,
        hold_in_download: float = 0.0,
    ) -> None:
        self.runs += 1
        command = [
            sys.executable, "-m", "tests.campaign.crash_child",
            "--store", str(self.store_path),
            "--name", "crash",
            "--output", str(self.output),
            "--udp", str(self.udp_dir / "max_ndvi.json"),
            "--namespace", MAX_NDVI_URL,
            "--bbox", ",".join(map(str, BBOX)),
            "--temporal-extent", ",".join(TEMPORAL_EXTENT),
            "--parallel-jobs", str(RUN_SLOTS),
            "--hold-before-create", str(hold_before_create),
            "--hold-after-create", str(hold_after_create),
            "--hold-in-download", str(hold_in_download),
        ]  # fmt: skip
        for name, backend in self.backends.items():
            command += ["--backend", f"{name}={backend.url}"]
        with self.log(self.runs).open("wb") as log:
            self.child = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    def log(self, run: int) -> Path:
        return self.tmp_path / f"child-{run}.log"

    def kill(self) -> None:
        assert self.child is not None
        os.kill(self.child.pid, signal.SIGKILL)
        assert self.child.wait(timeout=10) == -signal.SIGKILL, self.tail()

    def tail(self, lines: int = 40) -> str:
        text = self.log(self.runs).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_for(self, what: str, condition: Callable[[], bool], deadline: float = KILL_DEADLINE) -> None:
        """Poll `condition` until it holds; fails if the child ends first or time runs out."""
        assert self.child is not None
        end = time.monotonic() + deadline
        while not condition():
            if self.child.poll() is not None:
                pytest.fail(
                    f"run {self.runs} ended (rc {self.child.returncode}) before {what}\n{self.tail()}"
                )
            if time.monotonic() > end:
                pytest.fail(f"run {self.runs}: no {what} within {deadline} s\n{self.tail()}")
            time.sleep(POLL)

    # looking ----------------------------------------------------------------------------------

    def listed(self) -> dict[str, list[dict[str, Any]]]:
        """Every job on each backend (one page: the listing must not need a second)."""
        found = {}
        for name, connection in self.connections.items():
            jobs = connection.list_jobs(limit=1000)
            assert not [link for link in jobs.links if link.rel == "next"], "more jobs than one page"
            found[name] = list(jobs)
        return found

    def unrecorded(self) -> tuple[list[str], list[str]]:
        """Tokens of `creating` tasks without a job id: (with a job on the backend, without one)."""
        waiting = [t for t in self.store.tasks_in(self.campaign_id, S.CREATING) if t.job_id is None]
        if not waiting:
            return [], []
        listed = {token_of(job) for jobs in self.listed().values() for job in jobs}
        tokens = [str(t.client_token) for t in waiting]
        return [t for t in tokens if t in listed], [t for t in tokens if t not in listed]

    def parts(self) -> dict[str, int]:
        """`.part` files in the result folder, with their sizes (a file renamed meanwhile is left out)."""
        found = {}
        for path in self.output.glob("**/*.part"):
            try:
                found[str(path.relative_to(self.output))] = path.stat().st_size
            except FileNotFoundError:
                continue
        return found

    def events(self) -> int:
        return self.store.count_events(self.campaign_id)

    def landing(self, kind: str, events: int) -> Landing:
        unrecorded, unposted = self.unrecorded()
        return Landing(
            kind=kind,
            after=round(time.monotonic() - self.started, 2),
            events=events,
            unrecorded=unrecorded,
            unposted=unposted,
            downloading=len(self.store.tasks_in(self.campaign_id, S.DOWNLOADING)),
            parts=self.parts(),
        )


@pytest.fixture
def harness(tmp_path: Path, udp_dir: Path) -> Iterator[Harness]:
    started: dict[str, LocalBackend] = {}
    try:
        for name in BACKENDS:
            config = BackendConfig(
                state_dir=tmp_path / f"backend-{name}",
                udp_dirs=(udp_dir,),
                simulation=FAST,
                run_slots=RUN_SLOTS,
            )
            started[name] = LocalBackend(config).start()
        made = Harness(tmp_path, udp_dir, started)
        try:
            yield made
        finally:
            made.close()
    finally:
        for backend in started.values():
            backend.stop()


def _kill_at(harness: Harness, kind: str, rng: random.Random) -> Landing:
    """Start the child aimed at `kind`, wait for its condition, kill it, and say where it landed.

    Each condition asks for something new since the start: a crash leaves its own traces (a job not
    recorded, a `.part` file) that must not trigger the next kill at once.
    """
    events_before = harness.events()
    unrecorded_before, unposted_before = (set(tokens) for tokens in harness.unrecorded())
    parts_before = set(harness.parts())
    creating_before = {t.client_token for t in harness.store.tasks_in(harness.campaign_id, S.CREATING)}
    if kind == "job-posted":
        harness.start(hold_after_create=HOLD_AFTER_CREATE)
        harness.wait_for(
            "job created and not recorded", lambda: bool(set(harness.unrecorded()[0]) - unrecorded_before)
        )
        delay = rng.uniform(0.0, HOLD_AFTER_CREATE / 4)
    elif kind == "before-post":
        harness.start(hold_before_create=HOLD_BEFORE_CREATE)
        harness.wait_for(
            "task creating and not posted", lambda: bool(set(harness.unrecorded()[1]) - unposted_before)
        )
        delay = rng.uniform(0.0, HOLD_BEFORE_CREATE / 4)
    elif kind == "downloading":
        harness.start(hold_in_download=HOLD_IN_DOWNLOAD)
        harness.wait_for("partial download", lambda: bool(set(harness.parts()) - parts_before))
        delay = rng.uniform(0.0, HOLD_IN_DOWNLOAD / 4)
    elif kind == "creating":
        harness.start()
        harness.wait_for(
            "task creating",
            lambda: any(
                t.client_token not in creating_before
                for t in harness.store.tasks_in(harness.campaign_id, S.CREATING)
            ),
        )
        delay = rng.uniform(0.0, 0.03)
    else:
        more = rng.randint(5, 40)
        harness.start()
        harness.wait_for(f"{more} more events", lambda: harness.events() >= events_before + more)
        delay = rng.uniform(0.0, 0.2)
    time.sleep(delay)  # the random part of the moment, not a synchronisation
    harness.kill()
    return harness.landing(kind, harness.events() - events_before)


def test_runner_survives_five_sigkills(harness: Harness) -> None:
    rng = random.Random(SEED)
    kinds = ["before-post", "job-posted", "job-posted", "downloading", rng.choice(["creating", "progress"])]
    rng.shuffle(kinds)
    began = time.monotonic()
    landings = [_kill_at(harness, kind, rng) for kind in kinds]
    report = "\n".join(f"  kill {i + 1}: {landing}" for i, landing in enumerate(landings))
    print(f"\nkills (seed {SEED}):\n{report}")

    # The last run is left alone and must end the campaign by itself.
    harness.start()
    assert harness.child is not None
    try:
        returncode = harness.child.wait(timeout=FINAL_DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the last run did not end within {FINAL_DEADLINE} s\n{harness.tail()}")
    print(f"all six runs took {time.monotonic() - began:.1f} s")
    assert returncode == 0, harness.tail()
    summary = json.loads(harness.log(harness.runs).read_text().strip().splitlines()[-1])
    assert summary["counts"]["done"] == summary["tasks"] == 49

    # Every task done, with its files, nothing stuck and nothing half-written left.
    tasks = list(harness.store.all_tasks(harness.campaign_id))
    assert Counter(t.state for t in tasks) == {S.DONE: len(tasks)}
    for task in tasks:
        assert task.job_id and task.backend in BACKENDS and task.client_token
        assert task.result_paths, task
        for path in task.result_paths:
            assert Path(path).is_file() and Path(path).stat().st_size > 0, path
            assert Path(path).resolve().is_relative_to(harness.output.resolve())
        assert (harness.output / task.tile_id / "item.json").is_file()
    assert harness.parts() == {}
    assert list(harness.output.glob("**/*.tmp")) == []
    for task in tasks:
        item = json.loads((harness.output / task.tile_id / "item.json").read_text())
        for name, asset in item["assets"].items():
            content = (harness.output / task.tile_id / name).read_bytes()
            assert asset["file:checksum"] == "1220" + hashlib.sha256(content).hexdigest(), (
                task.tile_id,
                name,
            )

    # One backend job per recorded attempt: no duplicate, no orphan, each task's job is its own.
    listed = harness.listed()
    found = [token_of(job) for jobs in listed.values() for job in jobs]
    assert None not in found, "a job without a client token"
    tokens = [str(t) for t in found]
    assert all(str(t).startswith(f"ou-{harness.uid}-") for t in tokens), tokens
    duplicated = {t: n for t, n in Counter(tokens).items() if n > 1}
    assert duplicated == {}, f"duplicate jobs: {duplicated}"
    attempted = {client_token(harness.uid, t.id, a) for t in tasks for a in range(1, t.attempts + 1)}
    assert set(tokens) == attempted, (
        f"orphans {sorted(set(tokens) - attempted)}, missing {sorted(attempted - set(tokens))}"
    )
    assert len(tokens) == sum(t.attempts for t in tasks)
    by_id = {(name, str(job["id"])): job for name, jobs in listed.items() for job in jobs}
    for task in tasks:
        job = by_id[(str(task.backend), str(task.job_id))]
        assert token_of(job) == task.client_token == client_token(harness.uid, task.id, task.attempts)
        assert job["status"] == "finished", job

    # The kills landed where they were aimed: a job not yet recorded, a download half written.
    adopted = sum(
        "adopted" in (event.reason or "") for task in tasks for event in harness.store.events_of(task.id)
    )
    print(f"jobs adopted by their token after a crash: {adopted}")
    assert any(landing.unposted for landing in landings), report
    assert any(landing.unrecorded for landing in landings), report
    partial = [
        name
        for landing in landings
        for name, size in landing.parts.items()
        if size < (harness.output / name.removesuffix(".part")).stat().st_size
    ]
    assert partial, report
