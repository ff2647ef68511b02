"""The campaign engine: store, task model, job creator, scheduler, downloads, and the `Campaign` API."""

from __future__ import annotations

from openeo_upscale.campaign.asset_fetch import download_asset, download_results, safe_asset_path
from openeo_upscale.campaign.campaign import Campaign
from openeo_upscale.campaign.client import BackendClient
from openeo_upscale.campaign.creator import Udp, parameters_for
from openeo_upscale.campaign.download_pool import Downloader
from openeo_upscale.campaign.forecast import Forecast, Interval, Measurement, Tracking
from openeo_upscale.campaign.health import BackendState
from openeo_upscale.campaign.leases import Leases
from openeo_upscale.campaign.models import (
    BackendSummary,
    CampaignSettings,
    CampaignSummary,
    Event,
    JobRecord,
    RunnerInfo,
    RunnerSummary,
    Task,
)
from openeo_upscale.campaign.pacing import Backoff, Pacer
from openeo_upscale.campaign.runner import Runner
from openeo_upscale.campaign.scheduler import BackendSlot, Scheduler, TickResult
from openeo_upscale.campaign.settings import BackendSettings, Leasing, Limits, Polling, RetryPolicy
from openeo_upscale.campaign.states import (
    JOB_ACTIVE,
    JOB_TERMINAL,
    TASK_ACTIVE,
    TASK_HOLDING,
    TASK_TERMINAL,
    TASK_TRANSITIONS,
    JobStatus,
    TaskState,
    is_allowed,
)
from openeo_upscale.campaign.store import SCHEMA_VERSION, Store
from openeo_upscale.campaign.validation import check_tile_ids, validate_campaign, validate_parameters
from openeo_upscale.errors import (
    AuthError,
    BackendError,
    CampaignBusyError,
    CampaignError,
    CampaignExistsError,
    CapacityError,
    DownloadError,
    ForecastOverBudgetError,
    NoUsableBackendError,
    ParameterError,
    PermanentError,
    StoreError,
    TransientError,
)

__all__ = [
    "JOB_ACTIVE",
    "JOB_TERMINAL",
    "SCHEMA_VERSION",
    "TASK_ACTIVE",
    "TASK_HOLDING",
    "TASK_TERMINAL",
    "TASK_TRANSITIONS",
    "AuthError",
    "BackendClient",
    "BackendError",
    "BackendSettings",
    "BackendSlot",
    "BackendState",
    "BackendSummary",
    "Backoff",
    "Campaign",
    "CampaignBusyError",
    "CampaignError",
    "CampaignExistsError",
    "CampaignSettings",
    "CampaignSummary",
    "CapacityError",
    "DownloadError",
    "Downloader",
    "Event",
    "Forecast",
    "ForecastOverBudgetError",
    "Interval",
    "JobRecord",
    "JobStatus",
    "Leases",
    "Leasing",
    "Limits",
    "Measurement",
    "NoUsableBackendError",
    "Pacer",
    "ParameterError",
    "PermanentError",
    "Polling",
    "RetryPolicy",
    "Runner",
    "RunnerInfo",
    "RunnerSummary",
    "Scheduler",
    "Store",
    "StoreError",
    "Task",
    "TaskState",
    "TickResult",
    "Tracking",
    "TransientError",
    "Udp",
    "check_tile_ids",
    "download_asset",
    "download_results",
    "is_allowed",
    "parameters_for",
    "safe_asset_path",
    "validate_campaign",
    "validate_parameters",
]
