"""Batch jobs of the local backend: create, estimate, start, queue, run slots, finish, cancel, logs.

A dispatcher thread moves jobs along: `queued` jobs take a free run slot of their user in
start order, `running` jobs finish when their simulated time is up. It sleeps until the next
thing is due or until a request wakes it, so an idle backend costs nothing.

Every cost is `BackendConfig.credits` of the CPU seconds a job used (or, for an estimate,
would use).

What happens on restart: the state is in SQLite, so every job, log and result is still there.
A simulated job that was `running` keeps its schedule (it finishes when it would have, or at
once if that moment has passed); `queued` jobs stay queued and take slots as usual.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from openeo_upscale.backend import errors as e
from openeo_upscale.backend import simulate
from openeo_upscale.backend.config import BackendConfig, LimitPolicy, Mode
from openeo_upscale.backend.engine.worker import JobSpec, JobWorker, Outcome
from openeo_upscale.backend.process_graphs import ProcessGraphStore
from openeo_upscale.backend.state import attempts, jobs, logs

_log = logging.getLogger(__name__)

Clock = Callable[[], float]


class JobStatus(enum.StrEnum):
    """openEO batch job statuses.

    The campaign code has its own copy (`openeo_upscale.campaign.states.JobStatus`) on purpose: the
    local backend shares nothing with it but the openEO API, as any other backend would.
    """

    CREATED = "created"
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    ERROR = "error"
    CANCELED = "canceled"


ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
"""Statuses that hold a queue place or a run slot."""
TERMINAL = frozenset({JobStatus.FINISHED, JobStatus.ERROR, JobStatus.CANCELED})
"""Statuses a job ends in; it can be started again from any of them."""

LOG_LEVELS = ("debug", "info", "warning", "error")

_LISTED = [c for c in jobs.c if c.name not in ("process", "extent", "fail_message")]
ESTIMATE_SECONDS = 86400
"""How long a job's estimate is valid."""
REAL_POLL_SECONDS = 0.2
"""How often the dispatcher looks at running real jobs' processes."""
_TRAILING_MARKER = re.compile(r"\s*\[[^\]]*\]\s*$")


def isoformat(ts: float | None) -> str | None:
    """RFC 3339 in UTC, as openEO wants its timestamps."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cpu_seconds(used: Mapping[str, Any]) -> float:
    """The CPU seconds a job's usage records (none recorded: 0)."""
    return float(used.get("cpu", {}).get("value", 0.0))


class JobService:
    """All job operations of the backend, for one state database and results folder."""

    def __init__(
        self,
        engine: sa.Engine,
        config: BackendConfig,
        results_dir: Path,
        clock: Clock = time.time,
        process_graphs: ProcessGraphStore | None = None,
    ) -> None:
        """`process_graphs` holds the users' stored processes (a real job may call them); by
        default those of `engine`."""
        self._db = engine
        self._config = config
        self._results = results_dir
        self._clock = clock
        self._process_graphs = process_graphs or ProcessGraphStore(engine)
        self._workers: dict[str, JobWorker] = {}
        self._wake = threading.Condition()
        self._write_lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ----- lifecycle of the dispatcher -------------------------------------------------------

    def start_dispatcher(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._dispatch_loop, name="job-dispatcher", daemon=True)
        self._thread.start()

    def stop_dispatcher(self, timeout: float = 5.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread:
            self._thread.join(timeout)
            self._thread = None
        for worker in list(self._workers.values()):
            worker.kill()
        self._workers.clear()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        """One write transaction at a time: sequence numbers (job `seq`, log `n`) are read
        and incremented inside it, and SQLite serialises writers anyway."""
        with self._write_lock, self._db.begin() as conn:
            yield conn

    def _poke(self) -> None:
        with self._wake:
            self._wake.notify_all()

    # ----- operations ------------------------------------------------------------------------

    def create(
        self,
        user: str,
        process: Mapping[str, Any],
        *,
        title: str | None = None,
        description: str | None = None,
        plan: str | None = None,
        budget: float | None = None,
        log_level: str | None = None,
        job_options: Mapping[str, Any] | None = None,
    ) -> str:
        now = self._clock()
        job_id = "j-" + uuid.uuid4().hex[:24]
        extent = simulate.extent_of(process)
        with self._transaction() as conn:
            seq = conn.execute(sa.select(sa.func.coalesce(sa.func.max(jobs.c.seq), 0))).scalar_one() + 1
            conn.execute(
                sa.insert(jobs).values(
                    id=job_id,
                    seq=seq,
                    user=user,
                    title=title,
                    description=description,
                    process=dict(process),
                    plan=plan,
                    budget=budget,
                    log_level=log_level or "info",
                    job_options=dict(job_options) if job_options else None,
                    status=JobStatus.CREATED.value,
                    progress=0.0,
                    created=now,
                    updated=now,
                    extent=extent.to_dict(),
                    attempt=0,
                )
            )
            self._append_log(conn, job_id, "info", f"Job created by {user}.")
        _log.info("job %s created for %s (%r)", job_id, user, title)
        return job_id

    def get(self, user: str, job_id: str) -> dict[str, Any]:
        with self._db.connect() as conn:
            row = (
                conn.execute(sa.select(jobs).where(jobs.c.id == job_id, jobs.c.user == user))
                .mappings()
                .first()
            )
        if row is None:
            raise e.JobNotFound(f"The batch job '{job_id}' does not exist.")
        return self._with_progress(dict(row))

    def list_page(
        self, user: str, limit: int, before_seq: int | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first; returns the page and the cursor of the next page (None at the end)."""
        query = sa.select(*_LISTED).where(jobs.c.user == user)
        if before_seq is not None:
            query = query.where(jobs.c.seq < before_seq)
        query = query.order_by(jobs.c.seq.desc()).limit(limit + 1)
        with self._db.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
        return [self._with_progress(r) for r in rows], (rows[-1]["seq"] if more and rows else None)

    def estimate(self, user: str, job_id: str) -> dict[str, Any]:
        """What the job would cost and take if started now (``GET /jobs/{id}/estimate``)."""
        job = self.get(user, job_id)
        extent = simulate.Extent(**job["extent"])
        attempt = job.get("attempt") or 1
        sim, seed = self._config.simulation, self._config.faults.seed
        seconds = simulate.simulated_seconds(extent, sim, attempt, seed)
        return {
            "costs": self._config.credits(simulate.cpu_seconds(seconds)),
            "duration": f"PT{round(seconds)}S",
            "size": 64 * 64 * 2 + 1024,
            "downloads_included": None,
            "expires": isoformat(self._clock() + ESTIMATE_SECONDS),
        }

    def update(self, user: str, job_id: str, changes: Mapping[str, Any]) -> None:
        job = self.get(user, job_id)
        if "process" in changes and JobStatus(job["status"]) in ACTIVE:
            raise e.JobLocked("Batch job is locked due to a queued or running batch computation.")
        values = dict(changes)
        if "process" in values:
            values["extent"] = simulate.extent_of(values["process"]).to_dict()
        values["updated"] = self._clock()
        with self._transaction() as conn:
            conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(**values))

    def delete(self, user: str, job_id: str) -> None:
        self.get(user, job_id)
        with self._transaction() as conn:
            conn.execute(sa.delete(logs).where(logs.c.job_id == job_id))
            conn.execute(sa.delete(jobs).where(jobs.c.id == job_id))
        shutil.rmtree(self._results / job_id, ignore_errors=True)
        self._poke()
        _log.info("job %s deleted by %s", job_id, user)

    def start(self, user: str, job_id: str) -> None:
        job = self.get(user, job_id)
        status = JobStatus(job["status"])
        if status in ACTIVE:
            return  # starting a queued or running job is a no-op, as the API says
        limit = self._config.slots_for(user)
        with self._transaction() as conn:
            busy = conn.execute(
                sa.select(sa.func.count())
                .select_from(jobs)
                .where(jobs.c.user == user, jobs.c.status.in_([s.value for s in ACTIVE]))
            ).scalar_one()
            if self._config.limit_policy is LimitPolicy.REJECT and busy >= limit:
                raise e.ConcurrentJobLimit(
                    f"Job was not started because concurrent job limit ({limit}) is reached."
                )
            queue_limit = self._config.queue_limit
            if queue_limit is not None and busy >= queue_limit:
                raise e.ConcurrentJobLimit(
                    f"Job was not started because the queue limit ({queue_limit}) is reached."
                )
            attempt = self._next_attempt(conn, user, job)
            now = self._clock()
            sim = self._config.simulation
            faults = self._config.faults
            key = self._fault_key(job)
            eligible = now + sim.queue_seconds * sim.time_scale
            stuck = simulate.decide(f"stuck:{key}:{attempt}", faults.seed, faults.stuck_rate)
            if stuck:
                eligible = now + faults.stuck_seconds
            done = conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == status.value)
                .values(
                    status=JobStatus.QUEUED.value,
                    queued_at=now,
                    eligible_at=eligible,
                    started_at=None,
                    finished_at=None,
                    progress=0.0,
                    updated=now,
                    attempt=attempt,
                    usage=None,
                    costs=None,
                    assets=None,
                    fail_message=self._failure(job, key, attempt),
                )
            )
            if done.rowcount != 1:
                return  # another request moved the job first
            self._append_log(conn, job_id, "info", f"Job queued (attempt {attempt}).")
            if stuck:
                self._append_log(conn, job_id, "debug", "Waiting for resources.")
        shutil.rmtree(self._results / job_id, ignore_errors=True)
        self._poke()

    def cancel(self, user: str, job_id: str) -> None:
        job = self.get(user, job_id)
        status = JobStatus(job["status"])
        if status not in ACTIVE:
            return
        now = self._clock()
        values: dict[str, Any] = {"status": JobStatus.CANCELED.value, "finished_at": now, "updated": now}
        if status is JobStatus.RUNNING and job.get("started_at") is not None:
            # What it used until now is billed, as for any job that ran.
            sim = self._config.simulation
            elapsed = max(0.0, now - float(job["started_at"]))
            simulated = self._config.mode is Mode.SIMULATED and sim.time_scale
            seconds = elapsed / sim.time_scale if simulated else elapsed
            values["usage"] = used = simulate.usage(simulate.Extent(**job["extent"]), seconds)
            values["costs"] = self._config.credits(_cpu_seconds(used))
        with self._transaction() as conn:
            done = conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == status.value)
                .values(**values)
            )
            if done.rowcount == 1:
                self._append_log(conn, job_id, "info", f"Job canceled by {user}.")
        worker = self._workers.pop(job_id, None)
        if worker is not None:
            worker.kill()
        self._poke()

    def logs(
        self, user: str, job_id: str, offset: str | None, level: str | None, limit: int | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        self.get(user, job_id)
        min_rank = LOG_LEVELS.index(level) if level in LOG_LEVELS else 0
        start = int(offset) if offset and offset.isdigit() else 0
        query = (
            sa.select(logs)
            .where(logs.c.job_id == job_id, logs.c.n > start)
            .where(logs.c.level.in_(LOG_LEVELS[min_rank:]))
            .order_by(logs.c.n)
        )
        if limit:
            query = query.limit(limit + 1)
        with self._db.connect() as conn:
            rows = list(conn.execute(query).mappings())
        more = bool(limit) and len(rows) > (limit or 0)
        rows = rows[:limit] if limit else rows
        entries = [
            {"id": str(r["n"]), "level": r["level"], "message": r["message"], "time": isoformat(r["time"])}
            for r in rows
        ]
        return entries, (entries[-1]["id"] if more and entries else None)

    def active_counts(self, user: str) -> dict[str, int]:
        with self._db.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.status, sa.func.count())
                .where(jobs.c.user == user, jobs.c.status.in_([s.value for s in ACTIVE]))
                .group_by(jobs.c.status)
            ).all()
        counts = {s.value: 0 for s in ACTIVE}
        counts.update({status: n for status, n in rows})
        return counts

    def result_file(self, job_id: str, name: str) -> Path:
        """The file of asset `name` of a job, refusing names that leave its results folder."""
        folder = (self._results / job_id).resolve()
        path = (folder / name).resolve()
        if folder not in path.parents or not path.is_file():
            raise e.FileNotFound(f"File '{name}' does not exist.")
        return path

    # ----- the dispatcher ----------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
            try:
                delay = self.dispatch_once()
            except Exception:  # keep the backend alive; the next round retries
                _log.exception("job dispatcher round failed")
                delay = 1.0
            with self._wake:
                if self._stopping:
                    return
                self._wake.wait(timeout=max(0.01, min(delay, 5.0)))

    def dispatch_once(self) -> float:
        """One round: finish due jobs, fill free slots. Returns seconds until the next is due."""
        now = self._clock()
        next_due = 60.0
        with self._db.connect() as conn:
            running = list(
                conn.execute(sa.select(jobs).where(jobs.c.status == JobStatus.RUNNING.value)).mappings()
            )
        per_user: dict[str, int] = {}
        for job in running:
            if self._config.mode is Mode.REAL:
                if self._follow_worker(dict(job), now):
                    per_user[job["user"]] = per_user.get(job["user"], 0) + 1
                    next_due = min(next_due, REAL_POLL_SECONDS)
                continue
            end = job["started_at"] + job["duration"]
            if job["fail_message"]:
                end = job["started_at"] + job["duration"] * 0.5
            if end <= now:
                self._finish(dict(job), now)
            else:
                per_user[job["user"]] = per_user.get(job["user"], 0) + 1
                next_due = min(next_due, end - now)
        with self._db.connect() as conn:
            queued = list(
                conn.execute(
                    sa.select(jobs.c.id, jobs.c.user, jobs.c.eligible_at)
                    .where(jobs.c.status == JobStatus.QUEUED.value)
                    .order_by(jobs.c.queued_at, jobs.c.seq)
                ).mappings()
            )
        for job in queued:
            if job["eligible_at"] > now:
                next_due = min(next_due, job["eligible_at"] - now)
                continue
            if per_user.get(job["user"], 0) >= self._config.slots_for(job["user"]):
                continue
            if self._run(job["id"], now):
                per_user[job["user"]] = per_user.get(job["user"], 0) + 1
                next_due = min(next_due, 0.05)
        return next_due

    def _run(self, job_id: str, now: float) -> bool:
        if self._config.mode is Mode.REAL:
            return self._run_real(job_id, now)
        with self._transaction() as conn:
            job = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
            if job is None or job["status"] != JobStatus.QUEUED.value:
                return False
            sim = self._config.simulation
            extent = simulate.Extent(**job["extent"])
            seconds = simulate.simulated_seconds(extent, sim, job["attempt"], self._config.faults.seed)
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    status=JobStatus.RUNNING.value,
                    started_at=now,
                    updated=now,
                    duration=seconds * sim.time_scale,
                )
            )
            self._append_log(
                conn,
                job_id,
                "info",
                f"Job running: {extent.area_km2:.1f} km2 in EPSG:{extent.utm_epsg}, "
                f"{extent.start} to {extent.end}.",
            )
        return True

    def _finish(self, job: dict[str, Any], now: float) -> None:
        job_id = job["id"]
        extent = simulate.Extent(**job["extent"])
        sim = self._config.simulation
        sim_seconds = job["duration"] / sim.time_scale if sim.time_scale else job["duration"]
        used = simulate.usage(extent, sim_seconds)
        costs = self._config.credits(_cpu_seconds(used))
        if job["fail_message"]:
            with self._transaction() as conn:
                done = conn.execute(
                    sa.update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value)
                    .values(status=JobStatus.ERROR.value, finished_at=now, updated=now, usage=used,
                            costs=costs)
                )
                if done.rowcount == 1:
                    self._append_log(conn, job_id, "error", job["fail_message"])
            _log.info("job %s failed: %s", job_id, job["fail_message"])
            return
        folder = self._results / job_id
        names = sim.assets
        path = folder / names[0]
        proj = simulate.write_geotiff(path, extent)
        for name in names[1:]:
            shutil.copyfile(path, folder / name)
        data = path.read_bytes()
        assets = {
            name: {
                "href": name,
                "type": "image/tiff; application=geotiff",
                "roles": ["data"],
                "title": name,
                "file:size": len(data),
                "file:checksum": "1220" + hashlib.sha256(data).hexdigest(),
                **proj,
            }
            for name in names
        }
        with self._transaction() as conn:
            done = conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value)
                .values(
                    status=JobStatus.FINISHED.value,
                    finished_at=now,
                    updated=now,
                    progress=100.0,
                    usage=used,
                    costs=costs,
                    assets=assets,
                )
            )
            if done.rowcount == 1:
                self._append_log(conn, job_id, "info", f"Job finished: 1 asset, {costs} credits.")
        if done.rowcount != 1:
            shutil.rmtree(folder, ignore_errors=True)

    # ----- real mode: a worker process per job ------------------------------------------------

    def _run_real(self, job_id: str, now: float) -> bool:
        """Start a queued real job's worker; True when it now holds a run slot (False: it was not
        queued any more, or the memory model refused it)."""
        with self._transaction() as conn:
            job = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
            if job is None or job["status"] != JobStatus.QUEUED.value:
                return False
            extent = simulate.Extent(**job["extent"])
            refused = simulate.memory_failure(extent, self._config.simulation, job["job_options"])
            if refused is not None:
                self._refuse_real(conn, job_id, now, refused)
                return False
            spec = JobSpec(
                job_id=job_id,
                process=job["process"],
                folder=str(self._results / job_id),
                job_extent=(extent.west, extent.south, extent.east, extent.north),
                udp_dirs=tuple(str(d) for d in self._config.udp_dirs),
                user_processes=self._process_graphs.stored(job["user"]),
                memory_limit_mb=self._config.job_memory_limit_mb,
                allow_remote_namespaces=self._config.allow_remote_namespaces,
                namespace_timeout=self._config.namespace_timeout,
            )
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id)
                .values(status=JobStatus.RUNNING.value, started_at=now, updated=now)
            )
            self._append_log(conn, job_id, "info", "Job running: evaluating the process graph.")
        self._workers[job_id] = JobWorker(spec).start()
        return True

    def _refuse_real(self, conn: sa.Connection, job_id: str, now: float, message: str) -> None:
        """End a real job in error before it computes: the memory model says it would not fit in what
        it gets (the same line as a simulated job's). Billed the start fee, as a job that ran."""
        used = {"duration": {"value": 0.0, "unit": "seconds"}}
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id)
            .values(status=JobStatus.ERROR.value, started_at=now, finished_at=now, updated=now, usage=used,
                    costs=self._config.credits(0.0))
        )
        self._append_log(conn, job_id, "error", message)
        _log.info("real job %s refused: %s", job_id, message)

    def _follow_worker(self, job: dict[str, Any], now: float) -> bool:
        """Check a real job's process; True while it still runs (holds a slot)."""
        job_id = job["id"]
        worker = self._workers.get(job_id)
        if worker is None:
            self._end_real(job_id, now, None, "The job was interrupted by a restart of the backend.")
            return False
        if worker.alive:
            limit = self._config.job_time_limit
            if now - job["started_at"] <= limit:
                return True
            worker.kill()
            self._workers.pop(job_id, None)
            message = f"The job exceeded its time limit of {limit:g} s and was stopped."
            self._end_real(job_id, now, None, message)
            return False
        outcome = worker.outcome()
        self._workers.pop(job_id, None)
        assert outcome is not None
        self._end_real(job_id, now, outcome, outcome.message)
        return False

    def _end_real(self, job_id: str, now: float, outcome: Outcome | None, error: str | None) -> None:
        used = dict(outcome.usage) if outcome else {}
        with self._db.connect() as conn:
            started = conn.execute(sa.select(jobs.c.started_at).where(jobs.c.id == job_id)).scalar()
        used["duration"] = {"value": round(now - (started or now), 3), "unit": "seconds"}
        costs = self._config.credits(_cpu_seconds(used))
        ok = outcome is not None and outcome.ok and error is None
        values: dict[str, Any] = {"finished_at": now, "updated": now, "usage": used, "costs": costs}
        if ok:
            assert outcome is not None
            values.update(status=JobStatus.FINISHED.value, progress=100.0, assets=outcome.assets)
        else:
            values.update(status=JobStatus.ERROR.value)
        with self._transaction() as conn:
            done = conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value)
                .values(**values)
            )
            if done.rowcount == 1:
                if ok:
                    n = len(values["assets"])
                    self._append_log(conn, job_id, "info", f"Job finished: {n} asset(s), {costs} credits.")
                else:
                    self._append_log(conn, job_id, "error", error or "The job failed.")
        _log.info("real job %s ended: %s", job_id, "finished" if ok else error)

    # ----- helpers -----------------------------------------------------------------------------

    def _with_progress(self, job: dict[str, Any]) -> dict[str, Any]:
        status = JobStatus(job["status"])
        if status is JobStatus.RUNNING and job.get("duration"):
            elapsed = self._clock() - job["started_at"]
            job["progress"] = round(min(99.0, 100.0 * elapsed / job["duration"]), 1)
        elif status is JobStatus.FINISHED:
            job["progress"] = 100.0
        elif status in (JobStatus.CREATED, JobStatus.QUEUED):
            job["progress"] = 0.0
        return job

    def _append_log(self, conn: sa.Connection, job_id: str, level: str, message: str) -> None:
        n = (
            conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(logs.c.n), 0)).where(logs.c.job_id == job_id)
            ).scalar_one()
            + 1
        )
        conn.execute(
            sa.insert(logs).values(job_id=job_id, n=n, time=self._clock(), level=level, message=message)
        )

    @staticmethod
    def _fault_key(job: Mapping[str, Any]) -> str:
        """What counts as "the same job" across attempts: its title, without a trailing
        ``[marker]`` (clients such as openeo-upscale put a per-attempt token there)."""
        title = _TRAILING_MARKER.sub("", job.get("title") or "")
        return title or simulate.process_key(job["process"])

    def _next_attempt(self, conn: sa.Connection, user: str, job: Mapping[str, Any]) -> int:
        key = self._fault_key(job)
        row = conn.execute(
            sa.select(attempts.c.count).where(attempts.c.user == user, attempts.c.key == key)
        ).first()
        count = (row[0] if row else 0) + 1
        if row:
            conn.execute(
                sa.update(attempts).where(attempts.c.user == user, attempts.c.key == key).values(count=count)
            )
        else:
            conn.execute(sa.insert(attempts).values(user=user, key=key, count=count))
        return count

    def _failure(self, job: Mapping[str, Any], key: str, attempt: int) -> str | None:
        """The error message if fault injection fails this attempt, else None."""
        faults = self._config.faults
        text = f"{job.get('title') or ''} {json.dumps(job['process'], sort_keys=True)}"
        for rule in faults.job_failures:
            if rule.match in text and attempt in rule.attempts:
                return f"{rule.message} (attempt {attempt})."
        if simulate.decide(f"fail:{key}:{attempt}", faults.seed, faults.job_failure_rate):
            return f"Injected failure (attempt {attempt}): the simulated job ran out of executor memory."
        if self._config.mode is Mode.SIMULATED:
            return simulate.memory_failure(simulate.Extent(**job["extent"]), self._config.simulation,
                                           job.get("job_options"))
        return None
