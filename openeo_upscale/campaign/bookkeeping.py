"""What one scheduler keeps in memory about its tasks while it moves them in the store.

A `TaskBook` writes each transition (with the scheduler's actor name) and counts the ones of the
current tick, with the backends whose slots they took or freed (their listing plans start over);
it keeps each task's retry timer after a transient failure (backoff with jitter, see `pacing`) and
the progress readings of running jobs that the adaptive tick goes by. None of it needs to survive a
crash: the store has every state, and a restarted scheduler simply retries at once.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from openeo_upscale.campaign.models import Task
from openeo_upscale.campaign.pacing import Backoff
from openeo_upscale.campaign.states import TASK_HOLDING, TaskState
from openeo_upscale.campaign.store import Store
from openeo_upscale.errors import BackendError, TransientError

__all__ = ["TaskBook"]

log = logging.getLogger("openeo_upscale.campaign.scheduler")
"""The scheduler's logger: these are its messages, under the name they always had."""

S = TaskState


class TaskBook:
    """A scheduler's transitions, retry timers and progress readings (see the module docstring)."""

    def __init__(self, store: Store, *, actor: str, backoff: Backoff, monotonic: Callable[[], float]) -> None:
        self.store = store
        self.actor = actor
        """The name the transitions are recorded under (``scheduler@3``)."""
        self._backoff = backoff
        self._now = monotonic
        self.changed = 0
        """Transitions made in this tick."""
        self.touched: set[str] = set()
        """Backends whose slots were taken or freed in this tick: their listing plans start over."""
        self.splits: list[tuple[int, list[int]]] = []
        """The tasks split in this tick, each with its children's ids."""
        self.retry_at: dict[int, float] = {}
        """When (monotonic seconds) a task's deferred request is due again."""
        self._failures: dict[int, int] = {}
        self.progress: dict[int, deque[tuple[float, float]]] = {}
        """Per running task, the first and the newest (monotonic seconds, percentage) readings."""

    def new_tick(self) -> None:
        """Start counting the transitions of a new tick."""
        self.changed = 0
        self.touched = set()
        self.splits = []

    def transition(
        self, task: Task, from_state: TaskState, to_state: TaskState, reason: str, **fields: Any
    ) -> bool:
        """`Store.transition` under the scheduler's name; False when someone else moved the task."""
        moved = self.store.transition(
            task.id, from_state, to_state, actor=self.actor, reason=reason, **fields
        )
        if moved:
            self.changed += 1
            if to_state is not from_state:
                self.cleared(task.id)
                if from_state is S.PENDING or to_state not in TASK_HOLDING:
                    # A slot was taken or freed: the backend's listing plan starts over.
                    self.touched.add(str(fields.get("backend") or task.backend))
                    self.progress.pop(task.id, None)
        return moved

    def split(self, task: Task, children: Sequence[Mapping[str, Any]], reason: str, origin: str,
              **fields: Any) -> list[int] | None:
        """`Store.split_task` from the task's state under the scheduler's name: the children's ids,
        or None when someone else moved the task first (nothing added). Counted like a transition
        that frees the task's slot."""
        ids = self.store.split_task(task.id, task.state, children, actor=self.actor, reason=reason,
                                    origin=origin, **fields)
        if ids is not None:
            self.changed += 1
            self.splits.append((task.id, list(ids)))
            self.cleared(task.id)
            self.touched.add(str(task.backend))
            self.progress.pop(task.id, None)
        return ids

    def moved(self, task: Task, to_state: TaskState, reason: str, **fields: Any) -> Task:
        """`transition` from the task's state; returns the task as stored now."""
        self.transition(task, task.state, to_state, reason, **fields)
        return self.store.task(task.id)

    def launched(self, task_id: int, backend: str) -> None:
        """The store's launch claim moved a task to `creating` on ``backend``: count it like a transition."""
        self.changed += 1
        self.touched.add(backend)
        self.cleared(task_id)
        self.progress.pop(task_id, None)

    def due(self, task: Task) -> bool:
        """Whether the task's deferred request (if any) may be tried again now."""
        return self._now() >= self.retry_at.get(task.id, 0.0)

    def defer(self, task: Task, exc: BackendError) -> None:
        """Try the task's request again after a backoff that grows with its consecutive failures."""
        failures = self._failures.get(task.id, 0) + 1
        self._failures[task.id] = failures
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        wait = self._backoff.delay(failures, retry_after)
        self.retry_at[task.id] = self._now() + wait
        log.info("task %s (%s): %s; retrying in %.1f s", task.id, task.tile_id, exc, wait)

    def cleared(self, task_id: int) -> None:
        """The task's request went through: no retry timer, and its failures count from zero again."""
        self.retry_at.pop(task_id, None)
        self._failures.pop(task_id, None)

    def note_progress(self, task_id: int, progress: float) -> None:
        """A running job's progress as listed; a reading is kept only when the percentage moved."""
        readings = self.progress.setdefault(task_id, deque(maxlen=2))
        if not readings or readings[-1][1] != progress:
            # The first reading and the newest: the widest baseline gives the steadiest rate
            # (two readings a tick apart would turn rounding into a large error).
            if len(readings) == 2:
                readings.pop()
            readings.append((self._now(), float(progress)))

    def forget_progress(self, task_id: int) -> None:
        """The job is not running (or reports no progress): its readings no longer apply."""
        self.progress.pop(task_id, None)
