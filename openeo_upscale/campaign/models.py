"""Read-only views of stored rows: a task (one tile of a campaign), one event of its timeline, one
backend job of the ledger, and one runner of a campaign."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
