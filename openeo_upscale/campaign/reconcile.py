"""Reconciling the active tasks on a backend with its job listing, once per due listing.

`Reconciler.poll` walks ``GET /jobs`` once, newest first, cut short at the first page that has
shown every job and client token it looks for (`list_jobs`), and moves each active task along with
its job's status:

- a task in `creating` whose token a listed job carries adopts that job: the answer to its
  ``POST /jobs`` was lost, or its runner stopped before recording it. One whose token no listed job
  carries has its job created (again), unless another live runner recorded the token less than
  `CREATE_GRACE` ago;
- a created job is started, a queued or running one followed (progress readings, `max_runtime`);
  a job adopted from another job manager (`store.adoptions`: it carries no token) is followed by
  its id like any other, and one the backend no longer lists puts its task back to pending;
- a job's end is decided here: finished (costs and usage recorded), or failed, canceled, gone from
  the listing or over its runtime, after which the task is retried (a new job) or fails; one that
  ran out of memory may be retried with more memory, or replaced by its quadrants (`split`).

The client token (``ou-<campaign uid>-<task id>-<attempt>``) goes into the job's title and
description in brackets (`client_token`, `token_of`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from openeo_upscale.campaign.bookkeeping import TaskBook
from openeo_upscale.campaign.client import REQUEST_TIMEOUT, BackendClient
from openeo_upscale.campaign.failures import MEMORY_KEY, is_memory_error, more_memory
from openeo_upscale.campaign.health import HealthKeeper
from openeo_upscale.campaign.leases import Leases
from openeo_upscale.campaign.models import Task
from openeo_upscale.campaign.pacing import Pacer
from openeo_upscale.campaign.settings import Limits, RetryPolicy, merged_job_options
from openeo_upscale.campaign.slots import BackendSlot
from openeo_upscale.campaign.split import Splitter
from openeo_upscale.campaign.states import JobStatus, TaskState
from openeo_upscale.campaign.store import Store, is_adopted_token
from openeo_upscale.errors import (
    AuthError,
    BackendError,
    CampaignError,
    CapacityError,
    ParameterError,
    StoreError,
    TransientError,
)

__all__ = [
    "CREATE_GRACE",
    "LATE_COSTS_WINDOW",
    "TOKEN_LISTING_MARGIN",
    "TOKEN_PATTERN",
    "Listing",
    "Reconciler",
    "client_token",
    "job_status",
    "list_jobs",
    "parse_time",
    "token_of",
]

log = logging.getLogger("openeo_upscale.campaign.scheduler")
"""The scheduler's logger: these are its messages, under the name they always had."""

S = TaskState

CREATE_GRACE = timedelta(seconds=2 * sum(REQUEST_TIMEOUT) + 10)
"""How long after another runner recorded a token its ``POST /jobs`` may still be in flight: until
then, and unless that runner has stopped, a job missing from the listing is not created again."""

TOKEN_PATTERN = re.compile(r"\[(ou-[0-9a-f]{6,32}-\d+-\d+)\]")
"""How a client token appears in a job's title or description."""

TOKEN_LISTING_MARGIN = timedelta(minutes=15)
"""Clock skew allowed when a newest-first listing is cut off before a token's creation time."""

LATE_COSTS_WINDOW = timedelta(hours=1)
"""How long after a failed or canceled job ended its costs are still looked for in the listings."""

SlotTask = Callable[[BackendSlot, Task], None]
"""A request the scheduler makes for a task on a backend (create its job, start it)."""

Later = Callable[[BackendSlot, Task, CapacityError | TransientError], None]
"""The scheduler's answer to a request that failed for now: a backoff, a lowered capacity, a pause."""


def client_token(campaign_uid: str, task_id: int, attempt: int) -> str:
    """The idempotency marker of one attempt of one task."""
    return f"ou-{campaign_uid}-{task_id}-{attempt}"


def token_of(job: Mapping[str, Any]) -> str | None:
    """The client token in a listed job's title or description, if any."""
    for key in ("title", "description"):
        text = job.get(key)
        if isinstance(text, str):
            match = TOKEN_PATTERN.search(text)
            if match:
                return match.group(1)
    return None


@dataclass
class Listing:
    """What one walk of ``GET /jobs`` showed: every listed job by id, and those carrying a wanted token."""

    by_id: dict[str, dict[str, Any]]
    by_token: dict[str, dict[str, Any]]


def list_jobs(client: BackendClient, tasks: Sequence[Task]) -> Listing:
    """One walk of the backend's job listing, cut short once every wanted job and token is seen."""
    wanted_ids = {t.job_id for t in tasks if t.job_id}
    wanted_tokens = {t.client_token for t in tasks if not t.job_id and t.client_token}
    token_since = min((t.updated for t in tasks if not t.job_id), default=None)
    listing = Listing({}, {})

    def enough(page: list[dict[str, Any]]) -> bool:
        if wanted_ids - listing.by_id.keys():
            return False
        if not wanted_tokens - listing.by_token.keys():
            return True
        # Newest first (as openEO backends list): past the oldest unresolved token's time,
        # the missing tokens cannot appear further down.
        parsed = [parse_time(job.get("created")) for job in page]
        created = [c for c in parsed if c is not None]
        if token_since is None or len(created) != len(parsed) or created != sorted(created, reverse=True):
            return False
        return bool(created) and created[-1] < token_since - TOKEN_LISTING_MARGIN

    for job in client.list_jobs(enough):
        listing.by_id[str(job["id"])] = job
        token = token_of(job)
        if token is not None and token in wanted_tokens:
            listing.by_token[token] = job
    return listing


class Reconciler:
    """Follows the active tasks' jobs on the backends a scheduler polls (see the module docstring).

    ``create``, ``start`` and ``later`` are the scheduler's: ``POST /jobs`` for a task whose token no
    job carries, the start of a created job, and what a request that failed for now leads to.
    """

    def __init__(
        self,
        store: Store,
        campaign_id: int,
        book: TaskBook,
        health: HealthKeeper,
        *,
        create: SlotTask,
        start: SlotTask,
        later: Later,
        retry: RetryPolicy,
        limits: Limits,
        pacer: Pacer | None,
        leases: Leases | None,
        monotonic: Callable[[], float],
        wall: Callable[[], datetime],
        job_options: Mapping[str, Any] | None = None,
        splitter: Splitter | None = None,
    ) -> None:
        """``job_options``: the campaign's own (a backend's and a task's go on top of them);
        ``splitter``: how a task that ran out of memory becomes its quadrants (``on_memory_error =
        "split"``; without one such a task fails as with ``"fail"``)."""
        self.store = store
        self.splitter = splitter
        self.job_options = dict(job_options or {})
        self.campaign_id = campaign_id
        self._book = book
        self._health = health
        self._create = create
        self._start = start
        self._later = later
        self.retry = retry
        self.limits = limits
        self.pacer = pacer
        self.leases = leases
        self._now = monotonic
        self._wall = wall

    def poll(self, slot: BackendSlot, tasks: list[Task]) -> None:
        """List the backend's jobs once and move each of ``tasks`` (its active ones) along."""
        try:
            listing = list_jobs(slot.client, tasks)
        except (AuthError, TransientError) as exc:
            self._health.failed(slot, exc)
            return
        except BackendError as exc:
            log.error("backend %s: cannot list jobs: %s", slot.name, exc)
            self._health.pause(slot, exc)
            return
        self._health.reached(slot)
        for task in tasks:
            try:
                self._follow(slot, task, listing)
            except AuthError as exc:
                if not isinstance(exc, TransientError):
                    self._health.failed(slot, exc)
                    return
                self._later(slot, task, exc)
            except TransientError as exc:
                self._later(slot, task, exc)
                if exc.status == 429:
                    return  # the backend is paused: its other tasks wait too
            if not slot.health.polls:
                return
        self._late_costs(slot, listing)

    def _late_costs(self, slot: BackendSlot, listing: Listing) -> None:
        """Costs a backend lists only after a job failed or was canceled go to its ledger row."""
        missing = self.store.jobs_missing_costs(self.campaign_id, slot.name,
                                                since=self._wall() - LATE_COSTS_WINDOW)
        for job_id in missing & listing.by_id.keys():
            job = listing.by_id[job_id]
            costs = job.get("costs")
            if isinstance(costs, int | float):
                usage = job.get("usage")
                self.store.record_late_costs(self.campaign_id, slot.name, job_id, float(costs),
                                             usage if isinstance(usage, dict) else None)

    def _follow(self, slot: BackendSlot, task: Task, listing: Listing) -> None:
        """Move one active task along with what the listing says about its job."""
        book = self._book
        if task.job_id is None:
            job = listing.by_token.get(task.client_token or "")
            if job is None:
                if book.due(task) and self._may_create(task):
                    self._create(slot, task)
                return
            status = job_status(job)
            book.transition(
                task,
                S.CREATING,
                S.CREATING,
                "adopted the job carrying the task's token",
                job_id=str(job["id"]),
                job_status=status,
            )
            task = self.store.task(task.id)
        else:
            job = listing.by_id.get(task.job_id)
            if job is None:
                book.forget_progress(task.id)
                if is_adopted_token(task.client_token):
                    self._adopted_gone(slot, task)
                else:
                    self.job_failed(slot, task, "the job is no longer listed by the backend", [])
                return
            status = job_status(job)
        if status is None:
            return
        progress = job.get("progress")
        if isinstance(progress, int | float) and status is JobStatus.RUNNING:
            book.note_progress(task.id, progress)
        else:
            book.forget_progress(task.id)
        if status is JobStatus.CREATED:
            if task.state is S.CREATING and book.due(task):
                self._start(slot, task)
            return
        if status is JobStatus.QUEUED:
            if task.state is S.CREATING:
                book.transition(task, S.CREATING, S.QUEUED, "job queued", job_status=status)
            return
        if status is JobStatus.RUNNING:
            if task.state is S.CREATING:
                task = book.moved(task, S.QUEUED, "job queued", job_status=JobStatus.QUEUED)
            if task.state is S.QUEUED:
                book.transition(
                    task, S.QUEUED, S.RUNNING, "job running", job_status=status, started=self._wall()
                )
            elif task.state is S.RUNNING:
                self._check_runtime(slot, task)
            return
        if status is JobStatus.FINISHED:
            self._finished(slot, task, job)
            return
        if "costs" not in job and "usage" not in job:
            job = slot.client.job(str(task.job_id), task_id=task.id)
        if status is JobStatus.ERROR:
            self.job_failed(
                slot,
                task,
                "the job failed on the backend",
                slot.client.error_logs(str(task.job_id), task_id=task.id),
                job,
            )
            return
        self.job_failed(slot, task, "the job was canceled on the backend", [], job)

    def _adopted_gone(self, slot: BackendSlot, task: Task) -> None:
        """A job taken over from another job manager that the backend no longer lists: the task is
        pending again, to be run as a job of ours (the adopted job was not one of its attempts)."""
        why = (f"adopted job {task.job_id} is no longer listed by backend {slot.name}; "
               "the tile will run again as a new job")
        if self._book.transition(task, task.state, S.PENDING, why, error=why):
            log.warning("task %s (%s): %s", task.id, task.tile_id, why)

    def _may_create(self, task: Task) -> bool:
        """Whether ``POST /jobs`` may be sent (again) for a task in `creating` whose token no job carries.

        Not while another live runner recorded the token less than `CREATE_GRACE` ago: its request
        may still be on its way, and a listing cannot show a job that does not exist yet.
        """
        owner = task.claimed_by
        runner_id = None if self.leases is None else self.leases.runner_id
        if owner is None or owner == runner_id or self.leases is None:
            return True
        if self.leases.is_stopped(owner) or self._wall() - task.updated > CREATE_GRACE:
            return True
        log.info("task %s (%s): runner %s recorded its token; waiting before creating its job here",
                 task.id, task.tile_id, owner)
        return False

    def _finished(self, slot: BackendSlot, task: Task, job: Mapping[str, Any]) -> None:
        if "costs" not in job and "usage" not in job:
            job = slot.client.job(str(task.job_id), task_id=task.id)
        if task.state is S.CREATING:
            task = self._book.moved(task, S.QUEUED, "job queued", job_status=JobStatus.QUEUED)
        now = self._wall()
        costs = job.get("costs")
        usage = job.get("usage")
        if self._book.transition(
            task,
            task.state,
            S.FINISHED,
            "job finished",
            job_status=JobStatus.FINISHED,
            finished=now,
            costs=float(costs) if isinstance(costs, int | float) else None,
            usage=usage if isinstance(usage, dict) else None,
        ):
            log.info(
                "task %s (%s): job %s finished on backend %s", task.id, task.tile_id, task.job_id, slot.name
            )
            if self.pacer is not None and task.started is not None:
                self.pacer.record_duration(slot.name, (now - task.started).total_seconds())

    def job_failed(self, slot: BackendSlot, task: Task, reason: str, logs: list[str],
                   job: Mapping[str, Any] | None = None) -> None:
        """A job ended without results: retry the task (a new job), split it (out of memory, with
        ``on_memory_error = "split"``) or fail it, keeping the logs and what the failed job cost
        (``job``: its listing or metadata)."""
        detail = reason + (": " + " | ".join(logs[-3:]) if logs else "")
        used = task.attempts - task.attempt_floor
        why = f"attempt {used} of {self.retry.max_attempts}: {detail}"
        ended = _ended(job)
        memory = is_memory_error(logs)
        if memory and self.retry.on_memory_error == "split":
            refused = self._split(slot, task, why, detail, ended)
            if refused is None:
                return
            why += f"; not split: {refused}"
        retry = used < self.retry.max_attempts
        target, outcome = (S.PENDING, "will retry") if retry else (S.FAILED, "no attempts left")
        options: dict[str, Any] = {}
        if retry and memory and self.retry.on_memory_error == "more_memory":
            effective = merged_job_options(self.job_options, slot.settings.job_options, task.job_options)
            raised = more_memory(effective, self.retry)
            if raised is None:
                target, outcome = S.FAILED, f"out of memory with {self.retry.memory_max}, the most it may ask"
            else:
                options["job_options"] = {**(task.job_options or {}), MEMORY_KEY: raised}
                outcome = f"will retry with {MEMORY_KEY} {raised}"
                why += f"; retrying with {MEMORY_KEY} {raised}"
        if self._book.transition(task, task.state, target, why, error=detail, **ended, **options):
            log.log(logging.WARNING if retry else logging.ERROR, "task %s (%s): job %s on backend %s: %s; %s",
                    task.id, task.tile_id, task.job_id, slot.name, detail, outcome)

    def _split(self, slot: BackendSlot, task: Task, why: str, detail: str, ended: Mapping[str, Any]
               ) -> str | None:
        """Replace a task whose job ran out of memory by its quadrants, in one transaction: None
        when that is done (or another runner handled the job first), else why it cannot be split."""
        if self.splitter is None:
            return "the scheduler was given no UDP to rebuild the quadrants' parameters with"
        try:
            children = self.splitter.children(task)
        except (CampaignError, ParameterError) as exc:
            return str(exc)
        if not children:
            return "none of its quadrants meets the tile's geometry"
        names = ", ".join(str(child["tile_id"]) for child in children)
        origin = (f"split from tile {task.tile_id} (task {task.id}): its job {task.job_id} on backend "
                  f"{slot.name} ran out of memory")
        try:
            ids = self._book.split(task, children, f"{why}; split into {names}", origin, error=detail,
                                   **ended)
        except StoreError as exc:
            return str(exc)
        if ids is not None:
            log.warning("task %s (%s): job %s on backend %s ran out of memory; split into %s (tasks %s)",
                        task.id, task.tile_id, task.job_id, slot.name, names, ", ".join(map(str, ids)))
        return None

    def _check_runtime(self, slot: BackendSlot, task: Task) -> None:
        limit = self.limits.max_runtime
        if limit is None or task.started is None:
            return
        elapsed = (self._wall() - task.started).total_seconds()
        if elapsed <= limit:
            return
        slot.client.cancel_job(str(task.job_id), task_id=task.id)
        self.job_failed(
            slot, task, f"the job ran {elapsed:.0f} s, longer than max_runtime {limit:.0f} s; canceled", []
        )


def _ended(job: Mapping[str, Any] | None) -> dict[str, Any]:
    """How a failed or canceled job ended, for its task's transition: the status to record (error
    unless the backend says canceled), and its costs and usage where the backend gave them."""
    listed = job_status(job) if job is not None else None
    costs = job.get("costs") if job is not None else None
    usage = job.get("usage") if job is not None else None
    return {"job_status": listed if listed in (JobStatus.CANCELED, JobStatus.ERROR) else JobStatus.ERROR,
            "costs": float(costs) if isinstance(costs, int | float) else None,
            "usage": usage if isinstance(usage, dict) else None}


def job_status(job: Mapping[str, Any]) -> JobStatus | None:
    """A listed job's status, or None (logged) for one this openEO version does not know."""
    try:
        return JobStatus(str(job.get("status")))
    except ValueError:
        log.warning(
            "job %s has an unknown status %r; ignoring it this tick", job.get("id"), job.get("status")
        )
        return None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time of a listing (``Z`` or an offset; UTC when it has none), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
