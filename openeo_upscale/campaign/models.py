"""Typed records of what the store keeps: a task (one tile of a campaign), one event of its timeline,
one backend job of the ledger, one runner of a campaign, and a campaign's stored settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from openeo_upscale.campaign.settings import Leasing, Limits, Polling, RetryPolicy
from openeo_upscale.campaign.states import JobStatus, TaskState


@dataclass(frozen=True)
class Task:
    """One tile of a campaign and everything the engine knows about its backend job.

    ``state`` is ours, ``job_status`` the backend's; the two are never mixed.
    """

    id: int
    campaign_id: int
    tile_id: str
    epsg: int | None
    west: float | None
    south: float | None
    east: float | None
    north: float | None
    geometry: str | None
    parameters: dict[str, Any]
    state: TaskState
    job_status: JobStatus | None
    backend: str | None
    pinned_backend: str | None
    job_id: str | None
    client_token: str | None
    attempts: int
    attempt_floor: int
    """`attempts` when the task was last retried by hand: `max_attempts` counts from there."""
    created: datetime
    updated: datetime
    started: datetime | None
    finished: datetime | None
    usage: dict[str, Any] | None
    costs: float | None
    error: str | None
    result_paths: list[str] | None
    claimed_by: int | None = None
    """The runner that last claimed the task: recorded its client token, or holds its download."""
    claim_expires: datetime | None = None
    """Until when `claimed_by` holds the task's download (None for a launch claim)."""
    job_options: dict[str, Any] | None = None
    """Backend job options of this tile, over the campaign's and the backend's (None: none)."""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Task:
        """Build from a stored row (column name -> value)."""
        values = dict(row)
        values["state"] = TaskState(values["state"])
        if values["job_status"] is not None:
            values["job_status"] = JobStatus(values["job_status"])
        return cls(**values)


@dataclass(frozen=True)
class Event:
    """One transition of a task: who moved it, when, from where to where, and why."""

    id: int
    task_id: int
    at: datetime
    actor: str
    from_state: TaskState
    to_state: TaskState
    job_status: JobStatus | None
    reason: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Event:
        """Build from a stored row (column name -> value)."""
        values = dict(row)
        values["from_state"] = TaskState(values["from_state"])
        values["to_state"] = TaskState(values["to_state"])
        if values["job_status"] is not None:
            values["job_status"] = JobStatus(values["job_status"])
        return cls(**values)


@dataclass(frozen=True)
class JobRecord:
    """One backend job (one attempt of a task) in the ledger, from the moment its token is recorded.

    ``requested`` is when the client token was recorded (the slot is taken), ``created`` when the
    backend's job id became known, ``started`` when it was seen running, ``finished`` when it ended
    for the campaign (the slot is free again). ``costs`` are the credits the backend billed for it.
    """

    id: int
    campaign_id: int
    task_id: int
    attempt: int
    backend: str
    client_token: str
    job_id: str | None
    runner_id: int | None
    requested: datetime
    created: datetime | None
    started: datetime | None
    finished: datetime | None
    status: JobStatus | None
    costs: float | None
    usage: dict[str, Any] | None
    error: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobRecord:
        """Build from a stored row (column name -> value)."""
        values = dict(row)
        if values["status"] is not None:
            values["status"] = JobStatus(values["status"])
        return cls(**values)


@dataclass(frozen=True)
class RunnerInfo:
    """One process that runs (or ran) a campaign: where, since when, its last heartbeat."""

    id: int
    campaign_id: int
    host: str
    pid: int
    version: str
    backends: list[str]
    """The backends this runner may use (configured in its process)."""
    started: datetime
    heartbeat: datetime
    stopped: datetime | None
    stop_reason: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunnerInfo:
        """Build from a stored row (column name -> value)."""
        return cls(**dict(row))

    def describe(self, now: datetime | None = None) -> str:
        """``runner 3 (pid 4711 on host nb-12, since 2026-12-01 10:00:00 UTC, last heartbeat 4 s ago)``."""
        since = self.started.strftime("%Y-%m-%d %H:%M:%S UTC")
        text = f"runner {self.id} (pid {self.pid} on host {self.host}, since {since}"
        if now is not None:
            text += f", last heartbeat {max(0.0, (now - self.heartbeat).total_seconds()):.0f} s ago"
        return text + ")"


@dataclass(frozen=True)
class BackendSlots:
    """A backend as a campaign's stored settings list it for the dashboard: its name and limits,
    never a URL or a credential."""

    name: str
    parallel_jobs: int
    queue_limit: int | None = None
    weight: float = 1.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackendSlots | None:
        """The entry, or None for one that is not readable (a store written by hand or an old release)."""
        name, parallel = data.get("name"), data.get("parallel_jobs")
        if not isinstance(name, str) or not isinstance(parallel, int) or isinstance(parallel, bool):
            return None
        queue = data.get("queue_limit")
        weight = data.get("weight", 1.0)
        return cls(name, parallel, queue if isinstance(queue, int) else None,
                   float(weight) if isinstance(weight, int | float) else 1.0)


@dataclass(frozen=True)
class CampaignSettings:
    """A campaign's stored settings (the campaign row's ``config``): what any runner needs to run or
    resume it. `to_dict` is what the store keeps; `from_dict` reads it back, keys an older release
    did not write taking their defaults and keys this one does not know kept as they were."""

    uid: str
    output_dir: str | None = None
    namespace: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    column_map: dict[str, str] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: Limits = field(default_factory=Limits)
    polling: Polling = field(default_factory=Polling)
    leasing: Leasing = field(default_factory=Leasing)
    job_options: dict[str, Any] | None = None
    backends: tuple[BackendSlots, ...] = ()
    """The backends of the latest run, for the dashboard's slot display."""
    pilot: tuple[int, ...] = ()
    """The ids of the pilot's tasks (`Campaign.pilot`), once chosen."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Stored keys this release does not know, written back unchanged."""

    @property
    def results_folder(self) -> Path:
        """Where the campaign's results go (``results`` when the store names no folder)."""
        return Path(self.output_dir or "results")

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            **self.extra,
            "uid": self.uid,
            "namespace": self.namespace,
            "defaults": dict(self.defaults),
            "column_map": dict(self.column_map),
            "output_dir": self.output_dir,
            "retry": dataclasses.asdict(self.retry),
            "limits": dataclasses.asdict(self.limits),
            "polling": dataclasses.asdict(self.polling),
            "leasing": dataclasses.asdict(self.leasing),
            "job_options": self.job_options,
        }
        if self.backends:
            doc["backends"] = [dataclasses.asdict(b) for b in self.backends]
        if self.pilot:
            doc["pilot"] = list(self.pilot)
        return doc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CampaignSettings:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        listed = data.get("backends")
        slots = [BackendSlots.from_dict(b) for b in listed if isinstance(b, Mapping)] \
            if isinstance(listed, list) else []
        return cls(
            uid=str(data.get("uid") or ""),  # a campaign made by the store alone (tests) has none
            output_dir=data.get("output_dir"),
            namespace=data.get("namespace"),
            defaults=dict(data.get("defaults") or {}),
            column_map=dict(data.get("column_map") or {}),
            retry=RetryPolicy(**data.get("retry", {})),
            limits=Limits(**data.get("limits", {})),
            polling=Polling(**data.get("polling", {})),
            leasing=Leasing(**data.get("leasing", {})),
            job_options=data.get("job_options"),
            backends=tuple(s for s in slots if s is not None),
            pilot=tuple(int(i) for i in data.get("pilot") or ()),
            extra={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True)
class BackendSummary:
    """One backend in a campaign's summary: its tasks per state, how many hold a slot, its jobs and
    credits in the ledger, the runner holding its lease, and its health (`health.Health.summary`:
    state, reason, since, next_try, validation). ``parallel_jobs`` and ``requests`` (this process's
    HTTP requests to it) only while this process has the backend attached."""

    counts: dict[str, int]
    active: int
    jobs: int
    credits: float
    runner: int | None
    health: dict[str, Any]
    parallel_jobs: int | None = None
    requests: int | None = None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"counts": dict(self.counts), "active": self.active, "jobs": self.jobs,
                               "credits": self.credits, "runner": self.runner}
        if self.parallel_jobs is not None:
            doc["parallel_jobs"] = self.parallel_jobs
        if self.requests is not None:
            doc["requests"] = self.requests
        return {**doc, **self.health}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackendSummary:
        own = {"counts", "active", "jobs", "credits", "runner", "parallel_jobs", "requests"}
        return cls(counts=dict(data.get("counts") or {}), active=int(data.get("active") or 0),
                   jobs=int(data.get("jobs") or 0), credits=float(data.get("credits") or 0.0),
                   runner=data.get("runner"), health={k: v for k, v in data.items() if k not in own},
                   parallel_jobs=data.get("parallel_jobs"), requests=data.get("requests"))


@dataclass(frozen=True)
class RunnerSummary:
    """A live runner in a campaign's summary."""

    id: int
    host: str
    pid: int
    since: str
    """When it started (ISO 8601)."""
    heartbeat_age_s: float


@dataclass(frozen=True)
class CampaignSummary:
    """A campaign at one moment (`Campaign.status`); `to_dict` is `Campaign.summary`, the form
    ``status --json`` prints and the monitors read."""

    campaign: str
    tasks: int
    counts: dict[str, int]
    backends: dict[str, BackendSummary]
    credits: float
    jobs: int
    retried: int
    runners: tuple[RunnerSummary, ...]
    blocked: str | None
    """Why the run cannot move on by itself (a full disk, the credit budget), or None."""
    forecast: dict[str, Any] | None = None
    """The newest forecast (`campaign.forecast.Forecast.to_dict`, with the campaign's
    ``max_credits``), or None before a pilot."""
    tracking: dict[str, Any] | None = None
    """The done tasks against the pilot's forecast (`campaign.forecast.Tracking.to_dict`), or None."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "tasks": self.tasks,
            "counts": dict(self.counts),
            "backends": {name: entry.to_dict() for name, entry in self.backends.items()},
            "credits": self.credits,
            "jobs": self.jobs,
            "retried": self.retried,
            "runners": [dataclasses.asdict(runner) for runner in self.runners],
            "blocked": self.blocked,
            "forecast": self.forecast,
            "tracking": self.tracking,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CampaignSummary:
        return cls(
            campaign=str(data["campaign"]), tasks=int(data["tasks"]), counts=dict(data["counts"]),
            backends={name: BackendSummary.from_dict(entry) for name, entry in data["backends"].items()},
            credits=float(data["credits"]), jobs=int(data["jobs"]), retried=int(data["retried"]),
            runners=tuple(RunnerSummary(**runner) for runner in data["runners"]), blocked=data.get("blocked"),
            forecast=data.get("forecast"), tracking=data.get("tracking"),
        )
