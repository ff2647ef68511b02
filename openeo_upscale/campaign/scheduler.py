"""The engine: one `Scheduler.tick` does one round of work over every backend.

A tick

1. reads the active tasks (creating, queued, running) from the store: its cost grows with the
   active jobs, not with the size of the campaign;
2. per backend with active tasks, walks ``GET /jobs`` once (stopping at the first page that
   resolves everything it looks for) and moves each task along with its job's status
   (`reconcile`);
3. launches pending tasks into the free slots: the task row records the client token
   (campaign, task, attempt) *before* ``POST /jobs``, and the token goes into the job's title, so a
   job whose creation answer was lost, or that was created just before a crash, is found in the
   listing and adopted instead of created twice. A ``POST /jobs`` is only repeated once a complete
   listing shows the token is not there;
4. hands finished tasks to the download pool.

Failures are classified by `BackendClient`: transient ones are retried after a backoff with
jitter (per task, or for the whole backend on a failed listing or a 429) while everything else
goes on; ``ConcurrentJobLimit`` keeps the job and lowers the backend's capacity for a while; a
permanent error fails the task at once with the backend's message; a job error is retried up to
``max_attempts`` with the job's error logs kept.

Each backend's health is kept (see `health`): before anything else the scheduler logs in to it,
and before its first launch there it stores the UDP (where it has no namespace) and has the
backend validate the first task's process graph (``POST /validation``). A backend that cannot be
reached is *unreachable* and tried again after a backoff, its tasks left pending; one that cannot
authenticate at the start of a run (an identity provider that does not answer included), or that
refuses the process graph, is *unusable* for the rest of the run, its tasks left pending. Later in
a run an identity-provider outage is waited out like any transient failure. When no configured
backend is usable, the tick says so (`TickResult.no_backend`) and the run ends.

Several runners may share a campaign (see `leases`): a scheduler lists and launches only on the
backends whose lease its runner holds, the slots and the budget are counted in the store in the
transaction that claims them (`Store.claim_launches`), and any runner claims downloads.

The parts: `slots` (what is known of each backend), `bookkeeping` (transitions, retry timers,
progress readings), `reconcile` (a listing and what it means for each active task); this module
plans the tick and launches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from openeo_upscale.campaign.bookkeeping import TaskBook
from openeo_upscale.campaign.client import BackendClient
from openeo_upscale.campaign.creator import Udp
from openeo_upscale.campaign.health import Health, HealthKeeper
from openeo_upscale.campaign.leases import Leases
from openeo_upscale.campaign.models import Task
from openeo_upscale.campaign.pacing import ActiveJob, Backoff, Pacer
from openeo_upscale.campaign.reconcile import CREATE_GRACE, Reconciler, client_token, token_of
from openeo_upscale.campaign.settings import Leasing, Limits, RetryPolicy, merged_job_options
from openeo_upscale.campaign.slots import BackendSlot, advertised_capacity
from openeo_upscale.campaign.split import Splitter
from openeo_upscale.campaign.states import TASK_HOLDING, JobStatus, TaskState
from openeo_upscale.campaign.store import Launch, Store, utc_now
from openeo_upscale.errors import AuthError, BackendError, CapacityError, PermanentError, TransientError

__all__ = [
    "ACTIVE_STATES",
    "CLAIM_ROUNDS",
    "CREATE_GRACE",
    "BackendSlot",
    "Downloads",
    "JobSpec",
    "Scheduler",
    "TickResult",
    "advertised_capacity",
    "client_token",
    "token_of",
]

log = logging.getLogger(__name__)

S = TaskState
ACTIVE_STATES = tuple(sorted(TASK_HOLDING))
"""Task states that hold a backend slot."""

CLAIM_ROUNDS = 3
"""Launch claims per backend and tick when other runners keep taking the chosen tasks first."""


class JobSpec(Protocol):
    """Builds what ``POST /jobs`` sends for a task: the process, a title and a description."""

    def __call__(self, task: Task, token: str) -> tuple[dict[str, Any], str, str]: ...


class Downloads(Protocol):
    """The download pool as the scheduler sees it: it takes tasks the store has claimed for it."""

    def submit(self, task: Task) -> bool: ...

    def free(self) -> int: ...

    def release_stranded(self) -> int: ...

    def in_flight(self) -> int: ...

    def shutdown(self, wait: bool = True, *, abort: bool = False) -> None: ...


@dataclass
class TickResult:
    """What one tick did and saw."""

    changed: int = 0
    """Task transitions made."""
    launched: int = 0
    active: int = 0
    """Tasks holding a backend job after the tick."""
    pending: int = 0
    """Pending tasks left that a configured backend may run: 1 for "some" (counted in full only
    when launches are blocked)."""
    downloads: int = 0
    """Tasks finished or downloading (waiting for or in the download pool)."""
    blocked: str | None = None
    """Why pending tasks were not launched although slots were free (budget spent, ...)."""
    no_backend: str | None = None
    """Why no configured backend can be used (each cannot authenticate or refused the process
    graph), naming each; None while one can. The run ends: there is nothing it can do."""
    next_tick: float | None = None
    """Seconds until a backend is due to be listed or a deferred retry is due; None: nothing planned."""

    @property
    def idle(self) -> bool:
        """Nothing left to do: nothing active, nothing to download, nothing launchable."""
        waiting = self.pending == 0 or self.blocked is not None or self.no_backend is not None
        return self.active == 0 and self.downloads == 0 and waiting


class Scheduler:
    """The campaign engine's round of work; drive it with `tick` (tests) or a `Runner` (everyone else)."""

    def __init__(
        self,
        store: Store,
        campaign_id: int,
        campaign_uid: str,
        backends: Sequence[BackendSlot],
        job_spec: JobSpec,
        *,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        downloads: Downloads | None = None,
        pacer: Pacer | None = None,
        prepare: Callable[[BackendClient], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
        backoff: Backoff | None = None,
        leases: Leases | None = None,
        job_options: Mapping[str, Any] | None = None,
        udp: Udp | None = None,
        defaults: Mapping[str, Any] | None = None,
        column_map: Mapping[str, str] | None = None,
    ) -> None:
        """``udp``, ``defaults`` and ``column_map`` are the campaign's: with them a task that ran out
        of memory can be replaced by its quadrants (``on_memory_error = "split"``)."""
        if not backends:
            raise ValueError("a scheduler needs at least one backend")
        self.store = store
        self.campaign_id = campaign_id
        self.campaign_uid = campaign_uid
        self.backends = {slot.name: slot for slot in backends}
        self.job_spec = job_spec
        self.retry = retry or RetryPolicy()
        self.limits = limits or Limits()
        self.downloads = downloads
        self.pacer = pacer
        self.job_options = dict(job_options or {})
        self.launch_only: frozenset[int] | None = None
        """Launch only these tasks (a pilot's), or any pending one (None); the run ends when none of
        them is left pending."""
        """The campaign's job options; a backend's and then a tile's override them."""
        self.leases = leases
        """This runner's membership of the campaign; None: the only runner, holding every backend."""
        self._prepare = prepare
        self._now = monotonic
        self._wall = wall
        self._backoff = backoff or Backoff(self.retry)
        self._health = HealthKeeper(
            self.backends, backoff=self._backoff, monotonic=monotonic, wall=wall,
            report=leases.report if leases is not None else None,
            give_up=leases.give_up if leases is not None else None)
        self.actor = leases.actor("scheduler") if leases is not None else "scheduler"
        self._book = TaskBook(store, actor=self.actor, backoff=self._backoff, monotonic=monotonic)
        self._reconciler = Reconciler(
            store, campaign_id, self._book, self._health, create=self._create, start=self._start,
            later=self._later, retry=self.retry, limits=self.limits, pacer=pacer, leases=leases,
            monotonic=monotonic, wall=wall, job_options=self.job_options,
            splitter=None if udp is None else Splitter(udp, dict(defaults or {}), dict(column_map or {}),
                                                       min_size_m=self.retry.split_min_size_m))
        self._active: list[Task] = []

    @property
    def runner_id(self) -> int | None:
        return None if self.leases is None else self.leases.runner_id

    def held(self) -> list[str]:
        """The configured backends this scheduler launches on and polls now (its runner's leases)."""
        if self.leases is None:
            return list(self.backends)
        held = self.leases.held()
        return [name for name in self.backends if name in held]

    def close(self) -> None:
        """Shut the download pool down and leave the campaign (for schedulers driven by hand)."""
        if self.downloads is not None:
            self.downloads.shutdown(wait=True)
        if self.leases is not None:
            self.leases.leave()

    def health(self) -> dict[str, Health]:
        """Each configured backend's health as this scheduler sees it."""
        return self._health.view()

    # the tick -------------------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """Poll the backends that are due, move tasks along, launch into free slots, claim downloads."""
        self._book.new_tick()
        result = TickResult()
        if self.leases is not None:
            self.leases.check()
            self.leases.rebalance(self._busy)
        held = self.held()
        active = self.store.tasks_in(self.campaign_id, ACTIVE_STATES, backends=held) if held else []
        by_backend: dict[str, list[Task]] = {name: [] for name in held}
        for task in active:
            by_backend[str(task.backend)].append(task)
        polled: set[str] = set()
        for name, tasks in by_backend.items():
            slot = self.backends[name]
            if not slot.health.polls or not self._health.connect(slot):
                continue
            self._read_limits(slot)
            now = self._now()
            if tasks and now >= slot.paused_until and (now >= slot.next_poll or self._needs_listing(tasks)):
                self._reconciler.poll(slot, tasks)
                polled.add(name)
        if self.launch_only is not None:
            # A pilot task that ran out of memory and was split: its quadrants carry the tile now.
            for parent, children in self._book.splits:
                if parent in self.launch_only:
                    self.launch_only = self.launch_only | set(children)
        # Launch first: a freed slot is what the makespan waits for. The downloads' claim follows
        # at once, and the downloads themselves run in their own threads.
        result.launched, result.blocked = self._launch(held)
        result.downloads = self._hand_over_downloads()
        active = self.store.tasks_in(self.campaign_id, ACTIVE_STATES, backends=held) if held else []
        self._active = active
        result.active = self.store.count_in(self.campaign_id, ACTIVE_STATES, backends=self._followed())
        self._plan(active, polled | self._book.touched)
        result.next_tick = self._next_tick(active)
        usable = [name for name, slot in self.backends.items() if slot.health.usable]
        if not usable:
            result.no_backend = "; ".join(f"backend {name} {slot.health.reason}"
                                          for name, slot in self.backends.items())
        result.pending = self.store.count_in(
            self.campaign_id, (S.PENDING,), runnable_on=usable or list(self.backends), at_most=1,
            ids=self.launch_only,
        )
        if result.pending and result.blocked is None and not held and self.limits.max_credits is not None:
            # A runner without backends launches nothing, but must see the budget end the run too.
            spending = self.store.spending(self.campaign_id)
            if spending.room(self.limits.max_credits) <= 0:
                result.blocked = spending.describe(self.limits.max_credits)
        if result.blocked is not None or result.no_backend is not None:
            # The run may end here: say how many wait (once, not on every tick of a running campaign).
            result.pending = self.store.count_in(
                self.campaign_id, (S.PENDING,), runnable_on=usable or list(self.backends),
                ids=self.launch_only,
            )
        if result.next_tick is None and not held and (result.active or result.downloads):
            # Other runners hold the backends: look again for downloads to share and for the end.
            result.next_tick = self._leasing.heartbeat_seconds
        result.changed = self._book.changed
        return result

    @property
    def _leasing(self) -> Leasing:
        return self.leases.leasing if self.leases is not None else Leasing()

    def _followed(self) -> list[str]:
        """The configured backends whose jobs are followed: all but those that cannot authenticate."""
        return [name for name, slot in self.backends.items() if slot.health.polls]

    def _check(self, slot: BackendSlot, task: Task) -> bool:
        """Before the first launch on a backend: the UDP stored there where it has no namespace, the
        process graph of ``task`` validated (see `HealthKeeper.check`)."""
        if slot.checked:
            return True
        token = task.client_token or client_token(self.campaign_uid, task.id, task.attempts + 1)
        return self._health.check(slot, lambda: self.job_spec(task, token)[0], self._prepare,
                                  f"task {task.id} ({task.tile_id})")

    def _busy(self, backend: str) -> bool:
        """Whether this runner is creating a job on ``backend`` that is not recorded yet."""
        me = self.runner_id
        return any(t.backend == backend and t.state is S.CREATING and t.job_id is None and t.claimed_by == me
                   for t in self._active)

    def _needs_listing(self, tasks: list[Task]) -> bool:
        """A task in `creating` whose retry is due needs a listing first (adopt before creating again)."""
        return any(task.state is S.CREATING and self._book.due(task) for task in tasks)

    def _plan(self, active: list[Task], backends: set[str]) -> None:
        """Set when each backend that was listed or given a job is listed next."""
        if self.pacer is None:
            return
        now, wall = self._now(), self._wall()
        for name in backends:
            jobs = [
                ActiveJob(
                    name,
                    (wall - t.started).total_seconds() if t.state is S.RUNNING and t.started else None,
                    tuple((now - at, pct) for at, pct in self._book.progress.get(t.id, ())),
                )
                for t in active
                if t.backend == name
            ]
            interval = self.pacer.next_interval(name, changed=name in self._book.touched, jobs=jobs)
            self.backends[name].next_poll = now + interval

    def _next_tick(self, active: list[Task]) -> float | None:
        """Seconds until something is due: a backend to list, a retry, a paused backend's return."""
        now = self._now()
        holding = {t.backend for t in active}
        moments = [slot.next_poll for name, slot in self.backends.items() if name in holding]
        retry_at = self._book.retry_at
        moments += [retry_at[t.id] for t in active if t.id in retry_at]
        moments += [slot.paused_until for slot in self.backends.values() if slot.paused_until > now]
        moments += [slot.lowered_until for slot in self.backends.values() if slot.lowered_until > now]
        return max(0.0, min(moments) - now) if moments else None

    def _hand_over_downloads(self) -> int:
        """Claim finished tasks for the download pool's free workers; returns the tasks finished or
        downloading (by any runner)."""
        backends = self._followed()
        if self.downloads is not None:
            self.downloads.release_stranded()
        if (
            self.downloads is not None
            and (free := self.downloads.free()) > 0
            and self.store.count_in(self.campaign_id, (S.FINISHED,), backends=backends, at_most=1)
        ):
            claimed = self.store.claim_downloads(
                self.campaign_id, self.runner_id, backends, limit=free,
                lease_seconds=self._leasing.lease_seconds,
                actor=self.leases.actor("downloader") if self.leases is not None else "downloader")
            for task in claimed:
                self.downloads.submit(task)
        return self.store.count_in(self.campaign_id, (S.FINISHED, S.DOWNLOADING), backends=backends)

    # creating and starting --------------------------------------------------------------------------

    def _launch(self, held: Sequence[str]) -> tuple[int, str | None]:
        """Fill free slots of the held backends with pending tasks; returns (launched, why not where
        the budget held them back)."""
        now = self._now()
        free: dict[str, int] = {}
        active = self.store.tasks_in(self.campaign_id, ACTIVE_STATES, backends=held) if held else []
        for name in held:
            slot = self.backends[name]
            mine = [t for t in active if t.backend == name]
            room = slot.capacity(now) - len(mine)
            if slot.settings.queue_limit is not None:
                waiting = sum(
                    1
                    for t in mine
                    if t.state is S.CREATING or t.job_status in (JobStatus.CREATED, JobStatus.QUEUED)
                )
                room = min(room, slot.settings.queue_limit - waiting)
            if slot.connected and slot.health.usable and now >= slot.paused_until and room > 0:
                free[name] = room
        if not free:
            return 0, None
        budget = self.limits.max_credits
        if budget is not None:
            spending = self.store.spending(self.campaign_id)
            if spending.room(budget) <= 0:
                return 0, spending.describe(budget)
        for name in [name for name in free if not self.backends[name].checked]:
            first = self.store.tasks_in(self.campaign_id, S.PENDING, limit=1, runnable_on=[name],
                                        ids=self.launch_only)
            if not first or not self._check(self.backends[name], first[0]):
                del free[name]
        if not free:
            return 0, None
        pending = self.store.tasks_in(
            self.campaign_id, S.PENDING, limit=sum(free.values()), runnable_on=list(free),
            ids=self.launch_only,
        )
        plan: dict[str, list[Task]] = {}
        for task in pending:
            chosen = self._choose(task, free)
            if chosen is not None:
                free[chosen] -= 1
                plan.setdefault(chosen, []).append(task)
        launched, blocked = 0, None
        for name, tasks in plan.items():
            for _ in range(CLAIM_ROUNDS):
                claimed, lost, why = self._claim(self.backends[name], tasks, now)
                launched += claimed
                blocked = why or blocked
                if not lost:
                    break
                # Another runner took some of these tasks for its backend: take the next ones.
                tasks = self.store.tasks_in(self.campaign_id, S.PENDING, limit=lost, runnable_on=[name],
                                             ids=self.launch_only)
                if not tasks:
                    break
        return launched, blocked

    def _choose(self, task: Task, free: Mapping[str, int]) -> str | None:
        candidates = [n for n, room in free.items() if room > 0 and task.pinned_backend in (None, n)]
        if self.retry.other_backend and task.backend is not None and len(candidates) > 1:
            candidates = [n for n in candidates if n != task.backend]
        if not candidates:
            return None
        return max(candidates, key=lambda n: (free[n] * self.backends[n].settings.weight, n))

    def _claim(self, slot: BackendSlot, tasks: list[Task], now: float) -> tuple[int, int, str | None]:
        """Record the tokens of ``tasks`` in the store's slot claim, then create their jobs; returns
        how many were launched, how many had been taken by another runner, and the budget's word."""
        launches = []
        for task in tasks:
            attempt = task.attempts + 1
            launches.append(Launch(task.id, attempt, client_token(self.campaign_uid, task.id, attempt),
                                   f"attempt {attempt} on backend {slot.name}"))
        claimed = self.store.claim_launches(
            self.campaign_id, slot.name, launches, runner_id=self.runner_id, capacity=slot.capacity(now),
            queue_limit=slot.settings.queue_limit, max_credits=self.limits.max_credits, actor=self.actor)
        if claimed.held_back and not claimed.budget:
            log.debug("backend %s: %s", slot.name, claimed.held_back)
        for task_id in claimed.task_ids:
            self._book.launched(task_id, slot.name)
            self._create(slot, self.store.task(task_id))
        return len(claimed.task_ids), claimed.lost, claimed.held_back if claimed.budget else None

    def _create(self, slot: BackendSlot, task: Task) -> None:
        """``POST /jobs`` for a task in `creating` whose token is recorded and not on the backend."""
        assert task.client_token is not None
        if self.leases is not None and not self.leases.holds(slot.name):
            # Another runner took the backend over: it creates the job (see `_may_create`).
            return
        if not self._check(slot, task):
            self._unlaunched(slot, task)
            return
        try:
            process, title, description = self.job_spec(task, task.client_token)
            options = merged_job_options(self.job_options, slot.settings.job_options, task.job_options)
            job_id = slot.client.create_job(process, title=title, description=description,
                                            job_options=options, task_id=task.id)
        except (CapacityError, TransientError) as exc:
            self._later(slot, task, exc)
            return
        except AuthError as exc:
            self._health.failed(slot, exc)
            self._unlaunched(slot, task)
            return
        except PermanentError as exc:
            self._book.transition(
                task, S.CREATING, S.FAILED, f"backend refused the job: {exc.reason}", error=exc.reason
            )
            log.error(
                "task %s (%s): backend %s refused the job: %s", task.id, task.tile_id, slot.name, exc.reason
            )
            return
        self._book.cleared(task.id)
        if self._book.transition(
            task, S.CREATING, S.CREATING, "job created", job_id=job_id, job_status=JobStatus.CREATED
        ):
            self._start(slot, self.store.task(task.id))

    def _unlaunched(self, slot: BackendSlot, task: Task) -> None:
        """A task in `creating` whose job was not created on a backend now unusable goes back to
        pending, for another backend or run: no job carries its token (a complete listing said so,
        or the ``POST /jobs`` was refused)."""
        if not slot.health.usable:
            self._book.transition(task, S.CREATING, S.PENDING, f"backend {slot.name} {slot.health.reason}")

    def _start(self, slot: BackendSlot, task: Task) -> None:
        try:
            slot.client.start_job(str(task.job_id), task_id=task.id)
        except (CapacityError, TransientError) as exc:
            self._later(slot, task, exc)
            return
        except AuthError as exc:
            self._health.failed(slot, exc)
            return
        except PermanentError as exc:
            self._reconciler.job_failed(slot, task, f"the backend refused to start the job: {exc.reason}", [])
            return
        self._book.cleared(task.id)
        self._book.transition(task, S.CREATING, S.QUEUED, "job started", job_status=JobStatus.QUEUED)

    def _later(self, slot: BackendSlot, task: Task, exc: CapacityError | TransientError) -> None:
        """Try the task's request again after a backoff; a full backend lowers its capacity, a 429
        pauses the whole backend (the limit is the account's, not the task's)."""
        if isinstance(exc, CapacityError):
            self._lower_capacity(slot, exc)
        elif exc.status == 429:
            self._health.pause(slot, exc)
        self._book.defer(task, exc)

    # capacity and limits --------------------------------------------------------------------------

    def _lower_capacity(self, slot: BackendSlot, exc: CapacityError) -> None:
        holding = sum(
            1 for t in self.store.tasks_in(self.campaign_id, (S.QUEUED, S.RUNNING)) if t.backend == slot.name
        )
        slot.lowered_cap = max(1, holding)
        slot.lowered_until = self._now() + self.limits.capacity_cooldown
        log.warning(
            "backend %s answered %s: capacity lowered to %d for %.0f s",
            slot.name,
            exc.code,
            slot.lowered_cap,
            self.limits.capacity_cooldown,
        )

    def _read_limits(self, slot: BackendSlot) -> None:
        """Use the job limits a backend advertises in ``/me`` (read now and then), where it does."""
        now = self._now()
        refresh = self.limits.me_refresh
        if refresh is None or now - slot.me_read_at < refresh or now < slot.paused_until:
            return
        slot.me_read_at = now
        try:
            me = slot.client.me()
        except AuthError as exc:
            self._health.failed(slot, exc)
            return
        except BackendError as exc:
            log.info("backend %s: cannot read /me (%s); using parallel_jobs alone", slot.name, exc)
            return
        slot.advertised_cap = advertised_capacity(me)
        if slot.advertised_cap is not None:
            log.info("backend %s advertises room for %d jobs", slot.name, slot.advertised_cap)
