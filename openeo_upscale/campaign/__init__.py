"""The campaign engine: the task store and the task model (scheduler, creator and results to come)."""

from __future__ import annotations

from openeo_upscale.campaign.models import Event, Task
from openeo_upscale.campaign.states import (
    JOB_ACTIVE,
    JOB_TERMINAL,
    TASK_ACTIVE,
    TASK_TERMINAL,
    TASK_TRANSITIONS,
    JobStatus,
    TaskState,
    is_allowed,
)
from openeo_upscale.campaign.store import SCHEMA_VERSION, Store
from openeo_upscale.errors import StoreError

__all__ = [
    "JOB_ACTIVE",
    "JOB_TERMINAL",
    "SCHEMA_VERSION",
    "TASK_ACTIVE",
    "TASK_TERMINAL",
    "TASK_TRANSITIONS",
    "Event",
    "JobStatus",
    "Store",
    "StoreError",
    "Task",
    "TaskState",
    "is_allowed",
]
