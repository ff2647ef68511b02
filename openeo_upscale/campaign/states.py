"""Closed vocabularies of the campaign: our task states and the backend's job statuses."""

from __future__ import annotations

import enum


class TaskState(enum.StrEnum):
    """Where a task (one tile) is in *our* lifecycle; never mixed with the backend's job status."""

    PENDING = "pending"
    CREATING = "creating"
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    DOWNLOADING = "downloading"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"
    SKIPPED = "skipped"
    SPLIT = "split"
    """Replaced by its four quadrants (tasks of their own) after its job ran out of memory: the
    children carry the tile now, so a split task is finished work, neither a failure nor a hole."""


TASK_ACTIVE: frozenset[TaskState] = frozenset(
    {TaskState.CREATING, TaskState.QUEUED, TaskState.RUNNING, TaskState.DOWNLOADING}
)
"""States that occupy a backend slot or a download worker."""

TASK_HOLDING: frozenset[TaskState] = frozenset({TaskState.CREATING, TaskState.QUEUED, TaskState.RUNNING})
"""States that hold a backend job, and so one of its backend's slots (`parallel_jobs`)."""

TASK_TERMINAL: frozenset[TaskState] = frozenset(
    {TaskState.DONE, TaskState.FAILED, TaskState.CANCELED, TaskState.SKIPPED, TaskState.SPLIT}
)
"""States the scheduler never leaves on its own."""

TASK_SETTLED: frozenset[TaskState] = frozenset({TaskState.DONE, TaskState.SKIPPED, TaskState.SPLIT})
"""Terminal states that ask nothing more of the user: the tile's results are here, were not wanted,
or are its children's (a split task). A campaign whose tasks are all settled has finished its work."""

TASK_RETRYABLE: tuple[TaskState, ...] = (TaskState.FAILED, TaskState.CANCELED, TaskState.SKIPPED)
"""States that `Campaign.retry` puts back to pending (failed first: the default)."""

TASK_CANCELABLE_JOB: frozenset[TaskState] = TASK_HOLDING | {TaskState.PENDING}
"""States whose task may have a job on a backend that cancelling the campaign must cancel (a pending
task may hold the job id of an attempt that is being retried)."""

_S = TaskState

# Why these edges: a task only moves forward through one backend job, except that
# - any state holding a job (creating/queued/running) may fall back to pending, so a task whose job
#   vanished or errored on the backend can be retried without a detour through failed;
# - queued -> finished is allowed because one polling tick can miss the short running phase;
# - downloading -> finished re-arms a download that broke off (the job's results are still there);
# - failed/canceled/skipped -> pending are the explicit "retry"/"resume" operations;
# - failed -> finished retries only the download of a job that finished (no new job);
# - every state that is not terminal (pending, active ones, finished) may be canceled by the user;
# - a state holding a job may go to split when that job ran out of memory and the retry policy says
#   "split": the task is replaced by its quadrants, added in the same transaction.
# Nothing ever leaves done: a finished tile is never run twice. Nothing leaves split either: its
# children run the tile now, and running it again would compute their area twice.
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    _S.PENDING: frozenset({_S.CREATING, _S.SKIPPED, _S.CANCELED}),
    _S.CREATING: frozenset({_S.QUEUED, _S.PENDING, _S.FAILED, _S.CANCELED, _S.SPLIT}),
    _S.QUEUED: frozenset({_S.RUNNING, _S.FINISHED, _S.PENDING, _S.FAILED, _S.CANCELED, _S.SPLIT}),
    _S.RUNNING: frozenset({_S.FINISHED, _S.PENDING, _S.FAILED, _S.CANCELED, _S.SPLIT}),
    _S.FINISHED: frozenset({_S.DOWNLOADING, _S.CANCELED}),
    _S.DOWNLOADING: frozenset({_S.DONE, _S.FAILED, _S.FINISHED, _S.CANCELED}),
    _S.DONE: frozenset(),
    _S.FAILED: frozenset({_S.PENDING, _S.FINISHED}),
    _S.CANCELED: frozenset({_S.PENDING}),
    _S.SKIPPED: frozenset({_S.PENDING}),
    _S.SPLIT: frozenset(),
}
"""Allowed task transitions: ``to in TASK_TRANSITIONS[from]``."""


def is_allowed(from_state: TaskState, to_state: TaskState) -> bool:
    """Whether a task may move from ``from_state`` to ``to_state``."""
    return to_state in TASK_TRANSITIONS[from_state]


class JobStatus(enum.StrEnum):
    """A batch job's status as the openEO backend reports it (openEO API 1.2).

    The local backend (`openeo_upscale.backend.jobs`) has its own copy: it shares nothing with the
    campaign code but the openEO API. `exchange.ClientStatus` is the `openeo` client's job-table
    vocabulary (these plus ``not_started`` and ``skipped``), built from this one.
    """

    CREATED = "created"
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    ERROR = "error"
    CANCELED = "canceled"


JOB_ACTIVE: frozenset[JobStatus] = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
"""Backend statuses of a started job still in progress (``created`` is not started yet)."""

JOB_TERMINAL: frozenset[JobStatus] = frozenset({JobStatus.FINISHED, JobStatus.ERROR, JobStatus.CANCELED})
"""Backend statuses from which a job does not move by itself."""
