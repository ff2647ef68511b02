"""Read-only views of stored rows: a task (one tile of a campaign) and one event of its timeline."""

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
