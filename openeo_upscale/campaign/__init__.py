"""The campaign engine: the task store, the task model, the job creator's parameter logic, downloads."""

from __future__ import annotations

from openeo_upscale.campaign.creator import Udp, parameters_for, validate_campaign, validate_parameters
from openeo_upscale.campaign.downloads import download_asset, download_results, safe_asset_path
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
from openeo_upscale.errors import DownloadError, ParameterError, StoreError

__all__ = [
    "JOB_ACTIVE",
    "JOB_TERMINAL",
    "SCHEMA_VERSION",
    "TASK_ACTIVE",
    "TASK_TERMINAL",
    "TASK_TRANSITIONS",
    "DownloadError",
    "Event",
    "JobStatus",
    "ParameterError",
    "Store",
    "StoreError",
    "Task",
    "TaskState",
    "Udp",
    "download_asset",
    "download_results",
    "is_allowed",
    "parameters_for",
    "safe_asset_path",
    "validate_campaign",
    "validate_parameters",
]
