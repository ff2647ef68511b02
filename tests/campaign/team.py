"""The campaign tests' shared helpers: tiles around Antwerp, a logged-in connection, the max_ndvi UDP,
the checks of jobs against attempts (`check_jobs_match_attempts`, `done_once`); and several
`openeo-upscale run` processes on one campaign, with the audits that check them against the
backends' own job lists.

`Team` writes a campaign TOML (a tiles file, local backends, a store), starts runner processes
through `tests.campaign.runner_child` so that they begin at the same moment, and waits for them.
`audit` lists every job the backends hold and compares them with the ledger: no job without a
token, no token twice, every job in the ledger and every ledger row with a job id on its backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openeo
import shapely

from openeo_upscale.backend import LocalBackend
from openeo_upscale.campaign import Campaign, JobRecord, Polling, Store, TaskState, Udp
from openeo_upscale.campaign.scheduler import token_of
from openeo_upscale.grid import tiles, write_tiles
from tests.conftest import MAX_NDVI_URL

ROOT = Path(__file__).resolve().parents[2]
USER_ENV = "TEST_TEAM_USERNAME"
PASSWORD_ENV = "TEST_TEAM_PASSWORD"
S = TaskState
START_DEADLINE = 60.0
"""Seconds runner processes may take to import everything and be ready."""


def grid(count: int) -> Any:
    """``count`` 5 km UTM tiles around Antwerp."""
    found = tiles(shapely.box(3.9, 50.9, 4.9, 51.6), 5000)
    assert len(found) >= count
    return found.head(count)


def connect(backend: LocalBackend) -> openeo.Connection:
    return openeo.connect(backend.url).authenticate_basic("demo", "demo")


def max_ndvi(udp_dir: Path) -> Udp:
    """The shared max_ndvi UDP, called by its public namespace URL."""
    return Udp.from_file(udp_dir / "max_ndvi.json", namespace=MAX_NDVI_URL)


def backend_jobs(backend: LocalBackend) -> list[dict[str, Any]]:
    """Every job of the demo account, straight from the backend's API, all pages."""
    connection = connect(backend)
    found: list[dict[str, Any]] = []
    url: str | None = "/jobs?limit=100"
    while url:
        page = connection.get(url).json()
        found.extend(page["jobs"])
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    return found


@dataclass
class Audit:
    """The backends' jobs against the campaign's ledger."""

    listed: dict[str, list[dict[str, Any]]]
    ledger: list[JobRecord]
    problems: list[str] = field(default_factory=list)

    @property
    def jobs(self) -> int:
        return sum(len(jobs) for jobs in self.listed.values())


def audit(store: Store, campaign_id: int, backends: Mapping[str, LocalBackend]) -> Audit:
    """Compare every job on the backends with the ledger; `Audit.problems` says what does not match."""
    found = Audit({name: backend_jobs(b) for name, b in backends.items()}, list(store.ledger(campaign_id)))
    by_token = {row.client_token: row for row in found.ledger}
    tokens = Counter(token_of(job) for jobs in found.listed.values() for job in jobs)
    if tokens.get(None):
        found.problems.append(f"{tokens[None]} job(s) carry no client token")
    found.problems += [f"token {t} on {n} jobs (a duplicate)" for t, n in tokens.items() if t and n > 1]
    on_backend: set[tuple[str, str]] = set()
    for name, jobs in found.listed.items():
        for job in jobs:
            token = token_of(job)
            row = by_token.get(token or "")
            on_backend.add((name, str(job["id"])))
            if row is None:
                found.problems.append(f"job {job['id']} on {name} ({token}) is not in the ledger: an orphan")
            elif row.backend != name or (row.job_id is not None and row.job_id != str(job["id"])):
                found.problems.append(
                    f"job {job['id']} on {name} ({token}) is recorded as {row.backend} "
                    f"{row.job_id}: an orphan"
                )
    for row in found.ledger:
        if row.job_id is not None and (row.backend, row.job_id) not in on_backend:
            found.problems.append(f"ledger row {row.client_token}: job {row.job_id} is not on {row.backend}")
        if row.job_id is None and tokens.get(row.client_token):
            found.problems.append(f"ledger row {row.client_token} has no job id but a backend has its job")
    return found


class Team:
    """A campaign TOML and the runner processes started on it."""

    def __init__(
        self,
        tmp_path: Path,
        store: str,
        backends: Mapping[str, tuple[LocalBackend, int]],
        udp_dir: Path,
        *,
        tasks: int,
        name: str = "team",
        lease_seconds: float = 10.0,
        toml_extra: str = "",
    ) -> None:
        """``lease_seconds``: 10 s unless a test measures a takeover. Races with nobody killed need no
        quick takeover, and a short lease lets a loaded machine (two test workers) hold a runner up
        past it, so that it loses the campaign to another and stops."""
        self.tmp_path = tmp_path
        self.store_target = store
        self.name = name
        self.backends = {backend_name: backend for backend_name, (backend, _) in backends.items()}
        self.output = tmp_path / "results"
        tiles_file = write_tiles(grid(tasks), tmp_path / "tiles.geojson")
        entries = "".join(
            f"""
[[backends]]
name = "{backend_name}"
url = "{backend.url}"
parallel_jobs = {slots}
auth = "basic"
username_env = "{USER_ENV}"
password_env = "{PASSWORD_ENV}"
"""
            for backend_name, (backend, slots) in backends.items()
        )
        self.toml = tmp_path / "campaign.toml"
        self.toml.write_text(f"""
store = {json.dumps(store)}
name = "{name}"
output_dir = "results"
tiles = "{tiles_file.name}"
{toml_extra}

[udp]
file = {json.dumps(str(udp_dir / "max_ndvi.json"))}
namespace = "{MAX_NDVI_URL}"

[defaults]
temporal_extent = ["2023-05-01", "2023-07-01"]

[polling]
min_interval = 0.05
max_interval = 0.3

[leasing]
lease_seconds = {lease_seconds}
{entries}""")
        self.env = {**os.environ, USER_ENV: "demo", PASSWORD_ENV: "demo", "CI": os.environ.get("CI", "")}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(
        self,
        count: int,
        *args: str,
        hold_in_download: float = 0.0,
        hosts: Sequence[str] | None = None,
        verbose: bool = False,
    ) -> list[subprocess.Popen[bytes]]:
        """Start ``count`` runners of ``openeo-upscale run TOML --quiet *args``, all at the same moment
        (each registered under its host name in ``hosts``, as if on other machines, when given;
        logging debug messages with ``verbose``)."""
        go = self.tmp_path / f"go-{len(self.processes)}"
        started = []
        for n in range(count):
            index = len(self.processes)
            ready = self.tmp_path / f"ready-{index}"
            log = self.tmp_path / f"runner-{index}.log"
            command = [
                sys.executable,
                "-m",
                "tests.campaign.runner_child",
                "--ready",
                str(ready),
                "--go",
                str(go),
                "--hold-in-download",
                str(hold_in_download),
                *(["--host", hosts[n]] if hosts else []),
                "--",
                *(["-v"] if verbose else []),
                "run",
                str(self.toml),
                "--quiet",
                *args,
            ]
            with log.open("wb") as out:
                process = subprocess.Popen(
                    command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
                )
            self.processes.append(process)
            self.logs.append(log)
            started.append((process, ready))
        deadline = time.monotonic() + START_DEADLINE
        while not all(ready.exists() for _, ready in started):
            dead = [p for p, _ in started if p.poll() is not None]
            if dead:
                raise AssertionError(
                    f"a runner died before it was ready:\n{self.tail(self.processes.index(dead[0]))}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"runners not ready within {START_DEADLINE} s")
            time.sleep(0.01)
        go.write_text("go")
        return [process for process, _ in started]

    def wait(self, processes: Sequence[subprocess.Popen[bytes]], timeout: float) -> list[int]:
        """The exit codes of ``processes``, failing with their logs if one outlives ``timeout``."""
        deadline = time.monotonic() + timeout
        codes = []
        for process in processes:
            try:
                codes.append(process.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                logs = "\n".join(self.tail(i) for i in range(len(self.processes)))
                raise AssertionError(f"runner {process.pid} did not end within {timeout} s\n{logs}") from None
        return codes

    def output_of(self, process: subprocess.Popen[bytes]) -> str:
        return self.logs[self.processes.index(process)].read_text(errors="replace")

    def tail(self, index: int, lines: int = 40) -> str:
        text = self.logs[index].read_text(errors="replace").splitlines()
        return f"--- runner {index} (pid {self.processes[index].pid}):\n" + "\n".join(text[-lines:])

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


POLL = Polling(min_interval=0.1, max_interval=1.0)


DEFAULTS = {"temporal_extent": ["2023-05-01", "2023-07-01"]}


def check_jobs_match_attempts(store: Store, campaign: Campaign, *running: LocalBackend) -> None:
    """No duplicate job, no orphan: backend jobs are exactly the recorded attempts, once each."""
    tokens = Counter(token_of(job) for backend in running for job in backend_jobs(backend))
    assert None not in tokens, "a backend job without a token of this campaign"
    duplicated = {token: n for token, n in tokens.items() if n > 1}
    assert not duplicated, f"duplicate backend jobs: {duplicated}"
    tasks = list(store.all_tasks(campaign.id))
    recorded = {f"ou-{campaign.uid}-{task.id}-{attempt}" for task in tasks
                for attempt in range(1, task.attempts + 1)}
    assert set(tokens) == recorded
    assert sum(tokens.values()) == sum(task.attempts for task in tasks)


def done_once(store: Store, campaign: Campaign) -> None:
    """Every done task reached `done` exactly once and its files exist."""
    for task in store.tasks_in(campaign.id, S.DONE):
        reached = [e for e in store.events_of(task.id) if e.to_state is S.DONE]
        assert len(reached) == 1, task
        assert task.result_paths and all(Path(p).is_file() for p in task.result_paths)
        assert not list(Path(task.result_paths[0]).parent.glob("*.part"))
