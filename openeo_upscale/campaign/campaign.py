"""The Python API: a campaign is a store, a UDP, tiles as tasks, and the backends that run them.

campaign = Campaign.create("antwerp.sqlite", tiles, udp, defaults={"temporal_extent": [...]})
campaign.add_backend("cdse", connection, parallel_jobs=2)
campaign.pilot(8)         # optional: run 8 spread tiles, forecast the whole campaign
campaign.start()          # or run() to block until every task has ended
campaign.summary()
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import geopandas as gpd
import openeo
import pandas as pd
import shapely

from openeo_upscale.campaign.catalog import build_collection
from openeo_upscale.campaign.client import BackendClient, ConnectionFactory
from openeo_upscale.campaign.creator import Udp, task_rows, tile_records
from openeo_upscale.campaign.download_pool import Downloader
from openeo_upscale.campaign.forecast import Forecast, Gauge, Measurement, measurements, tracking
from openeo_upscale.campaign.health import BackendState, Health
from openeo_upscale.campaign.leases import Leases
from openeo_upscale.campaign.models import (
    BackendSlots,
    BackendSummary,
    CampaignSettings,
    CampaignSummary,
    RunnerInfo,
    RunnerSummary,
    Task,
)
from openeo_upscale.campaign.pacing import Pacer
from openeo_upscale.campaign.pilot import choose, default_size
from openeo_upscale.campaign.runner import Runner
from openeo_upscale.campaign.scheduler import BackendSlot, Scheduler, TickResult
from openeo_upscale.campaign.settings import BackendSettings, Leasing, Limits, Polling, RetryPolicy
from openeo_upscale.campaign.settings import job_options as settings_job_options
from openeo_upscale.campaign.states import (
    TASK_CANCELABLE_JOB,
    TASK_HOLDING,
    TASK_RETRYABLE,
    JobStatus,
    TaskState,
)
from openeo_upscale.campaign.store import Adoption, Store
from openeo_upscale.campaign.validation import validate_campaign
from openeo_upscale.errors import (
    BackendError,
    CampaignError,
    CampaignExistsError,
    ForecastOverBudgetError,
    NoUsableBackendError,
    StoreError,
)

log = logging.getLogger(__name__)

S = TaskState

FORECAST_EVERY_S = 60.0
"""A running campaign's forecast is made again at most this often (when tasks got done since)."""


class TaskCallback(Protocol):
    """Called with a task that reached `done` or `failed` (from the runner's thread)."""

    def __call__(self, task: Task) -> None: ...


class Campaign:
    """One campaign in a store; see the module docstring. Build with `create` or `open`."""

    def __init__(self, store: Store, campaign_id: int, *, owns_store: bool = False) -> None:
        self.store = store
        self.id = campaign_id
        row = store.campaign(campaign_id)
        self.name: str = row["name"]
        self.settings = CampaignSettings.from_dict(row["config"])
        """What the store keeps of the campaign's configuration."""
        self.udp = Udp.from_dict(row["udp"], self.settings.namespace) if row["udp"] else None
        self.uid: str = self.settings.uid
        self.retry_policy = self.settings.retry
        self.limits = self.settings.limits
        self.polling = self.settings.polling
        self.leasing = self.settings.leasing
        self.output_dir = self.settings.results_folder
        self.created = False
        """True when `create` made this campaign (False: it was there already and is resumed)."""
        self._owns_store = owns_store
        self._backends: dict[str, tuple[BackendSettings, BackendClient]] = {}
        self._thread: threading.Thread | None = None
        self._runner: Runner | None = None
        self._downloader: Downloader | None = None
        self._leases: Leases | None = None
        self._error: BaseException | None = None
        self._last: TickResult | None = None
        self.on_task_done: TaskCallback | None = None
        self.on_task_failed: TaskCallback | None = None
        self._gauge = Gauge(store, campaign_id)
        """Each task's size and each done task's measurement, kept between forecasts."""
        self._gauge_lock = threading.Lock()
        """One forecast at a time (the gauge is not thread-safe)."""
        self._forecasting: threading.Thread | None = None
        self._forecast_at = (0.0, -1)
        """When this process last made a running forecast (monotonic seconds) and how many were done."""

    # building ---------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        store: Store | str | os.PathLike[str],
        tiles: gpd.GeoDataFrame | Iterable[Mapping[str, Any]],
        udp: Udp | str | os.PathLike[str] | Mapping[str, Any],
        *,
        name: str = "campaign",
        defaults: Mapping[str, Any] | None = None,
        column_map: Mapping[str, str] | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        on_exists: Literal["resume", "error"] = "resume",
        namespace: str | None = None,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        polling: Polling | None = None,
        leasing: Leasing | None = None,
        job_options: Mapping[str, Any] | None = None,
        adopt: Sequence[Adoption] = (),
    ) -> Campaign:
        """A new campaign of one task per tile, every task validated first; or the existing one.

        ``udp`` is a `Udp`, a process document, or a path to one (``namespace`` then says where the
        backends find it, for example its public URL; without one, the UDP is stored on each backend
        as the account's own process). Nothing is written when a task's parameters break the UDP's
        schema: `ParameterError` names the task, the parameter and the rule. With
        ``on_exists="resume"`` a campaign of the same name in the store is opened instead (also when
        another process creates it at the same moment: names are unique in a store, so one of them
        creates it and the others resume it); with ``"error"`` that raises `CampaignExistsError`.
        ``created`` tells which happened.

        ``job_options`` go with every job (``POST /jobs``); a backend's own (`add_backend`) and a
        tile's ``job_options`` column (a JSON object, or its text) override them option by option.

        ``adopt`` starts some tiles where another job manager left their jobs (`takeover.read_takeover`
        builds them from its job table): their tasks are written in their adopted state, in the
        transaction that creates the campaign. A campaign that exists already is resumed as it is.
        """
        opened, owns = _store(store)
        try:
            found = _existing(opened, name)
            if found is not None:
                return cls._resumed(opened, found, name, on_exists, owns)
            the_udp = _udp(udp, namespace)
            campaign_options = settings_job_options(job_options or {}, "campaign")
            records = tile_records(tiles)
            validate_campaign(the_udp, records, defaults=defaults, column_map=column_map)
            config = CampaignSettings(
                uid=uuid.uuid4().hex[:12],
                namespace=the_udp.namespace,
                defaults=dict(defaults or {}),
                column_map=dict(column_map or {}),
                output_dir=os.fspath(Path(output_dir or f"{name}-results").resolve()),
                retry=retry or RetryPolicy(),
                limits=limits or Limits(),
                polling=polling or Polling(),
                leasing=leasing or Leasing(),
                job_options=campaign_options,
            ).to_dict()
            rows = task_rows(the_udp, records, defaults=defaults, column_map=column_map)
            try:
                campaign_id = opened.create_campaign(name, config=config, udp=the_udp.definition, tasks=rows,
                                                     adoptions=adopt)
            except CampaignExistsError:
                # Another process created it between our look and our insert: the name is a
                # unique key, so exactly one of us did.
                found = _existing(opened, name)
                assert found is not None
                return cls._resumed(opened, found, name, on_exists, owns)
            log.info("campaign %r created with %d tasks", name, len(records))
            campaign = cls(opened, campaign_id, owns_store=owns)
            campaign.created = True
            return campaign
        except BaseException:
            if owns:
                opened.close()
            raise

    @classmethod
    def _resumed(cls, store: Store, campaign_id: int, name: str, on_exists: str, owns: bool) -> Campaign:
        if on_exists == "error":
            raise CampaignExistsError(f"the store already holds a campaign named {name!r}; "
                                      "open it, or create with on_exists='resume'")
        log.info("campaign %r exists in the store; resuming it", name)
        return cls(store, campaign_id, owns_store=owns)

    @classmethod
    def open(cls, store: Store | str | os.PathLike[str], name: str | None = None) -> Campaign:
        """The campaign in a store (by name when the store holds several)."""
        opened, owns = _store(store)
        try:
            row = opened.campaign(name=name)
        except StoreError:
            if owns:
                opened.close()
            raise
        return cls(opened, row["id"], owns_store=owns)

    def add_backend(
        self,
        name: str,
        connection: openeo.Connection | ConnectionFactory,
        *,
        parallel_jobs: int = 2,
        queue_limit: int | None = None,
        weight: float = 1.0,
        job_options: Mapping[str, Any] | None = None,
    ) -> Campaign:
        """Let the campaign run jobs on a backend: an authenticated connection, or a factory building one.

        A factory is called again when an access token cannot be refreshed (long runs).
        ``job_options`` override the campaign's for the jobs on this backend (a tile's own still win).
        """
        if self.running:
            raise CampaignError("add backends before start(), or after stop()")
        settings = BackendSettings(name, parallel_jobs=parallel_jobs, queue_limit=queue_limit, weight=weight,
                                   job_options=job_options or {})
        self._backends[name] = (settings, BackendClient(name, connection))
        return self

    def set_limits(self, limits: Limits) -> None:
        """Change the campaign's limits (the credit budget, say) for this run and the next ones."""
        if limits == self.limits:
            return
        if self.running:
            raise CampaignError("change the limits before start(), or after stop()")
        log.warning("campaign %r: limits changed from %s to %s", self.name, self.limits, limits)
        self.limits = limits
        self._save_settings(dataclasses.replace(self.settings, limits=limits), "limits")

    @property
    def backends(self) -> dict[str, BackendClient]:
        """The configured backends' clients by name (each counts its HTTP requests)."""
        return {name: client for name, (_, client) in self._backends.items()}

    # running ----------------------------------------------------------------------------------

    def run(self, *, max_ticks: int | None = None, wait: bool = False,
            on_wait: Callable[[RunnerInfo], None] | None = None,
            accept_forecast: bool = False) -> dict[str, Any]:
        """Run until every task has ended (or ``max_ticks``); returns the `summary`, with the path
        of the results' STAC collection under ``"collection"`` when any task is done.

        ``wait``, ``on_wait`` and ``accept_forecast`` as for `start`. Raises `NoUsableBackendError`
        when no backend can be used (see `wait`).
        """
        self.start(max_ticks=max_ticks, wait=wait, on_wait=on_wait, accept_forecast=accept_forecast)
        self._wait_interruptibly()
        summary = self.summary()
        if summary["counts"][S.DONE.value]:
            try:
                summary["collection"] = str(self.collection())
            except CampaignError as exc:
                log.error("%s", exc)
                summary["collection_error"] = str(exc)
        return summary

    def _wait_interruptibly(self) -> None:
        try:
            self.wait()
        except KeyboardInterrupt:
            log.warning("interrupted: stopping; running jobs stay on their backends, run again to resume")
            self.stop()
            raise

    def collection(self) -> Path:
        """Write the STAC collection of every done task's results (``<output_dir>/collection.json``).

        `CampaignError` when the results folder cannot be written (a full disk, say).
        """
        title = f"openeo-upscale campaign {self.name}"
        try:
            return build_collection(self.store, self.id, self.output_dir, title=title)
        except OSError as exc:
            raise CampaignError(f"campaign {self.name!r}: cannot write the STAC collection in "
                                f"{self.output_dir}: {exc.strerror or exc}; run again once it can be "
                                "written (nothing is lost: the results are on disk)") from exc

    def start(self, *, max_ticks: int | None = None, wait: bool = False,
              on_wait: Callable[[RunnerInfo], None] | None = None,
              accept_forecast: bool = False, only: Iterable[int] | None = None) -> None:
        """Join the campaign as one of its runners and run in a background thread; `stop` ends it,
        `wait` waits for it.

        When the newest forecast (`pilot`) exceeds ``max_credits``, nothing is launched:
        `ForecastOverBudgetError` gives both figures, unless ``accept_forecast`` (then the run goes
        on until the budget itself is spent, as always). ``only`` launches those tasks alone (the
        pilot's) and ends when none of them is pending.

        On PostgreSQL any number of processes may run a campaign at once and share its work. On
        SQLite one may: while another live runner holds the campaign, this raises
        `CampaignBusyError` naming it, or with ``wait`` blocks until it is gone (``on_wait`` is
        called with the holder first).
        """
        if self.running:
            raise CampaignError(f"campaign {self.name!r} is already running")
        if not self._backends:
            raise CampaignError("add at least one backend first (add_backend)")
        if only is None and not accept_forecast:
            self._check_forecast()
        if self._thread is not None:
            # The previous run's downloads end and its runner leaves first: a new pool must not
            # resume a file that an old worker is still writing.
            self._thread.join()
        # What the dashboard shows as each backend's slots (names and limits only, never secrets).
        self._save_settings(dataclasses.replace(self.settings, backends=tuple(
            BackendSlots(name, settings.parallel_jobs, settings.queue_limit, settings.weight)
            for name, (settings, _client) in self._backends.items())), "backends")
        runner_ref: list[Runner] = []
        scheduler = self.scheduler(on_download=lambda: runner_ref[0].wake() if runner_ref else None,
                                   wait=wait, on_wait=on_wait)
        scheduler.launch_only = None if only is None else frozenset(only)
        downloader = scheduler.downloads
        leases = scheduler.leases
        assert isinstance(downloader, Downloader) and leases is not None
        runner = Runner(scheduler, idle_wait=self.polling.max_interval, on_tick=self._ticked)
        runner_ref.append(runner)
        leases.on_change = runner.wake
        self._runner, self._downloader, self._leases, self._error = runner, downloader, leases, None
        self._last_event = self.store.last_event_id()
        self._thread = threading.Thread(
            target=self._loop, args=(runner, downloader, leases, max_ticks), name=f"upscale-{self.name}",
            daemon=True,
        )
        self._thread.start()

    def scheduler(self, *, on_download: Callable[[], None] | None = None, wait: bool = False,
                  on_wait: Callable[[RunnerInfo], None] | None = None) -> Scheduler:
        """The engine without its loop, for driving `Scheduler.tick` by hand (tests, tools).

        Joins the campaign as a runner (see `start`); end with ``scheduler.close()``, which shuts its
        download pool down and leaves.
        """
        if not self._backends:
            raise CampaignError("add at least one backend first (add_backend)")
        leases = Leases(self.store, self.id, list(self._backends), leasing=self.leasing,
                        name=f"campaign {self.name!r}")
        leases.join(wait=wait, on_wait=on_wait)
        try:
            downloader = Downloader(self.store, self.output_dir, self.backends, retry=self.retry_policy,
                                    on_end=on_download, actor=leases.actor("downloader"),
                                    runner_id=leases.runner_id)
            return Scheduler(
                self.store,
                self.id,
                self.uid,
                [BackendSlot(settings, client) for settings, client in self._backends.values()],
                self._job_spec,
                retry=self.retry_policy,
                limits=self.limits,
                downloads=downloader,
                pacer=Pacer(self.polling),
                prepare=self._prepare_backend,
                leases=leases,
                job_options=self.settings.job_options,
                udp=self.udp,
                defaults=self.settings.defaults,
                column_map=self.settings.column_map,
            )
        except BaseException:
            leases.leave("could not start")
            raise

    def _loop(self, runner: Runner, downloader: Downloader, leases: Leases, max_ticks: int | None) -> None:
        try:
            last = runner.run(max_ticks=max_ticks)
            if last is not None and last.no_backend is not None and not runner.stopping:
                self._error = self._no_backend(runner.scheduler, last)
        except BaseException as exc:  # reported by wait(); the thread must not die silently
            log.exception("campaign %r: the scheduler stopped on an error", self.name)
            self._error = exc
        finally:
            downloader.shutdown(wait=True, abort=runner.stopping)
            self._refresh_forecast(force=True)  # the run's last word on how it tracks
            leases.leave("stopped by the user" if runner.stopping else "run ended")

    @property
    def runner(self) -> RunnerInfo | None:
        """This process as a runner of the campaign, once `start` has joined it (None before)."""
        return self._leases.runner if self._leases is not None else None

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop launching and polling; returns within ``timeout`` seconds.

        Jobs stay on their backends and `start` (or a later run, or another runner) picks them up
        again; downloads in progress are interrupted between two pieces and resume later from their
        ``.part`` files. The runner then leaves the campaign, so that other runners take its backends
        over at once. Returns True when the thread has ended, False if it is still finishing a request
        (it ends on its own; everything it writes is a complete transition).
        """
        if self._runner is not None:
            self._runner.stop()
        if self._downloader is not None:
            self._downloader.shutdown(wait=False, abort=True)
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background run to end; True if it has. Re-raises an error that stopped it:
        `NoUsableBackendError` when no backend could be used (each could not authenticate, or
        refused the process graph; the tasks stay pending), else a `CampaignError`."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        if self._error is not None:
            error, self._error = self._error, None
            if isinstance(error, NoUsableBackendError):
                raise error
            raise CampaignError(f"campaign {self.name!r} stopped on an error: {error}") from error
        return True

    def _no_backend(self, scheduler: Scheduler, last: TickResult) -> NoUsableBackendError:
        reasons = {name: str(health.reason) for name, health in scheduler.health().items()}
        pending = self.store.count_in(self.id, (S.PENDING,))
        return NoUsableBackendError(
            f"no backend can run campaign {self.name!r}: {last.no_backend}. "
            f"Its {pending:,} pending task(s) stay pending: fix that and run again",
            reasons=reasons)

    def close(self) -> None:
        """Stop, and close the store if the campaign opened it."""
        self.stop()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Campaign:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # knowing the cost -------------------------------------------------------------------------

    def pilot_tasks(self, tiles: int | None = None) -> list[Task]:
        """The pilot's tasks: chosen once (`pilot.choose`, spread over the zones, whole and partial
        tiles and the area) and kept in the store; asking for more tiles later adds to them."""
        stored = CampaignSettings.from_dict(self.store.campaign(self.id)["config"])
        kept = list(stored.pilot)  # chosen by this process or another
        wanted = default_size(self.store.count_in(self.id, list(S))) if tiles is None else tiles
        if wanted < 1:
            raise CampaignError(f"a pilot needs at least one tile, not {wanted}")
        if len(kept) < wanted:
            candidates = [t for t in self.store.all_tasks(self.id, states=(S.PENDING,)) if t.id not in kept]
            kept += [task.id for task in choose(candidates, wanted - len(kept))]
            self._save_settings(dataclasses.replace(self.settings, pilot=tuple(sorted(kept))), "pilot")
        chosen = set(kept[:wanted] if tiles is not None else kept)
        return [task for task in self.store.all_tasks(self.id) if task.id in chosen]

    def pilot(self, tiles: int | None = None, *, wait: bool = False,
              on_wait: Callable[[RunnerInfo], None] | None = None) -> Forecast:
        """Run ``tiles`` pilot tasks (`pilot_tasks`; about the square root of the tasks when None)
        as ordinary tasks of the campaign, then forecast the whole campaign from what every done task
        cost and took (`forecast.of_campaign`), keep the forecast in the store and return it.

        `CampaignError` when no pilot task got done (their failures are in ``status``).
        """
        chosen = self.pilot_tasks(tiles)
        left = [task.id for task in chosen if task.state is not S.DONE]
        if left:
            log.info("campaign %r: running %d pilot task(s)", self.name, len(left))
            self.start(wait=wait, on_wait=on_wait, only=left)
            self._wait_interruptibly()
        found = self.make_forecast(basis="pilot")
        if found is None:
            raise CampaignError(f"campaign {self.name!r}: no pilot task got done, so there is nothing to "
                                "forecast from; see `status` for why they failed")
        return found

    def make_forecast(self, *, basis: str = "running", record: bool = True) -> Forecast | None:
        """The forecast from every task done so far (None before any), kept in the store with
        ``record``; a running one carries how the done tasks track the pilot's forecast."""
        with self._gauge_lock:
            found, measured = self._gauge.forecast(slots=self._slots(), basis=basis)
        if found is None or not record:
            return found
        doc = found.to_dict()
        baseline = self.store.forecast(self.id, basis="pilot", first=True)
        if baseline is not None:
            doc["tracking"] = tracking(Forecast.from_dict(baseline.forecast), measured).to_dict()
        self.store.record_forecast(self.id, basis, doc)
        return found

    def measurements(self, task_ids: Iterable[int] | None = None) -> list[Measurement]:
        """What each done task (of ``task_ids``, or all) cost, took, used and wrote."""
        wanted = None if task_ids is None else set(task_ids)
        done = [task for task in self.store.all_tasks(self.id, states=(S.DONE,))
                if wanted is None or task.id in wanted]
        return measurements(done, self.store.ledger_of(self.id, [task.id for task in done]))

    def forecast(self) -> Forecast | None:
        """The newest forecast kept in the store (`pilot`, or one made while the campaign ran)."""
        stored = self.store.forecast(self.id)
        return None if stored is None else Forecast.from_dict(stored.forecast)

    def _save_settings(self, changed: CampaignSettings, *keys: str) -> None:
        """Store the ``keys`` of ``changed`` alone (other runners may have stored other keys since
        this one read the settings), and take the settings as stored now."""
        doc = changed.to_dict()
        self.settings = CampaignSettings.from_dict(
            self.store.update_campaign_config(self.id, {key: doc.get(key) for key in keys}))

    def _slots(self) -> list[int]:
        if self._backends:
            return [settings.parallel_jobs for settings, _ in self._backends.values()]
        return [slots.parallel_jobs for slots in self.settings.backends] or [1]

    def _check_forecast(self) -> None:
        budget = self.limits.max_credits
        found = self.forecast()
        if found is None or budget is None or not found.over(budget):
            return
        c = found.credits
        raise ForecastOverBudgetError(
            f"campaign {self.name!r}: the forecast is {c.median:,.2f} credits (90 %: {c.low:,.2f} to "
            f"{c.high:,.2f}, from {found.measured} task(s) done), over max_credits {budget:,.2f}; "
            "nothing beyond the pilot is launched. Raise max_credits, or accept the forecast "
            "(--accept-forecast, accept_forecast=True): the run then stops when the budget is spent",
            forecast=c.median, budget=budget)

    def _refresh_forecast(self, *, force: bool = False) -> None:
        """Make a running forecast now and then (see `FORECAST_EVERY_S`), when tasks got done since
        the last one: in a thread of its own, so that the scheduler ticks on meanwhile (a first
        forecast of 100,000 tasks takes seconds); with ``force`` now, in this thread."""
        running = self._forecasting is not None and self._forecasting.is_alive()
        if force:
            if running:
                assert self._forecasting is not None
                self._forecasting.join()
            self._forecast_now()
            return
        if running or time.monotonic() - self._forecast_at[0] < FORECAST_EVERY_S:
            return
        self._forecast_at = (time.monotonic(), self._forecast_at[1])
        self._forecasting = threading.Thread(target=self._forecast_now, name=f"upscale-forecast-{self.name}",
                                             daemon=True)
        self._forecasting.start()

    def _forecast_now(self) -> None:
        """A running forecast, when tasks got done since the last one; a failure is logged: the run
        goes on without it."""
        try:
            count = self.store.count_in(self.id, (S.DONE,))
            if count == self._forecast_at[1] or count == 0:
                return
            self._forecast_at = (time.monotonic(), count)
            self.make_forecast(basis="running")
        except (StoreError, ValueError, ArithmeticError) as exc:
            log.error("campaign %r: cannot update the forecast: %s", self.name, exc)

    # looking ----------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """`status` as JSON-ready data (see `models.CampaignSummary`)."""
        return self.status().to_dict()

    def status(self) -> CampaignSummary:
        """Counts per state, per backend (slots, states, jobs in the ledger, HTTP requests of this
        process, health), credits spent over every job, the live ``runners``, tasks ``retried``,
        and ``blocked``: why pending tasks are not launched (the credit budget, say), or None.

        A backend's health: ``state`` (`BackendState`: unknown, ready, unreachable, unusable),
        ``reason``, ``since`` (ISO 8601: unreachable or unusable since), ``next_try`` (seconds until
        an unreachable backend is tried again) and ``validation`` (``valid``, ``no /validation
        endpoint`` or None); this process's view while it runs the campaign, else the one its
        runners recorded in the store (``next_try`` only from a live runner).
        """
        counts = self.store.counts(self.id)
        per_backend = self.store.backend_counts(self.id)
        ledger = self.store.ledger_summary(self.id)
        holders = self.store.lease_holders(self.id)
        health = self._health()
        backends: dict[str, BackendSummary] = {}
        for name in sorted(set(per_backend) | set(self._backends) | set(ledger) | set(health)):
            states = per_backend.get(name, {})
            attached = self._backends.get(name)
            backends[name] = BackendSummary(
                counts={str(s): n for s, n in states.items() if n},
                active=sum(n for s, n in states.items() if s in TASK_HOLDING),
                jobs=ledger.get(name, {}).get("jobs", 0),
                credits=round(ledger.get(name, {}).get("credits", 0.0), 6),
                runner=holders.get(name, (None, None))[0],
                health=health.get(name) or Health().summary(self.store.now()),
                parallel_jobs=attached[0].parallel_jobs if attached else None,
                requests=attached[1].requests if attached else None,
            )
        now = self.store.now()
        stored = self.store.forecast(self.id)
        runners = tuple(RunnerSummary(r.id, r.host, r.pid, r.started.isoformat(),
                                      round((now - r.heartbeat).total_seconds(), 1))
                        for r in self.store.runners(self.id, live_within=self.leasing.lease_seconds))
        return CampaignSummary(
            campaign=self.name,
            tasks=sum(counts.values()),
            counts={str(state): n for state, n in counts.items()},
            backends=backends,
            credits=round(self.store.credits(self.id), 6),
            jobs=sum(entry["jobs"] for entry in ledger.values()),
            retried=self.store.retried_tasks(self.id),
            runners=runners,
            blocked=self._blocked(counts),
            forecast=None if stored is None else {**stored.forecast, "max_credits": self.limits.max_credits},
            tracking=None if stored is None else stored.forecast.get("tracking"),
        )

    def _blocked(self, counts: Mapping[TaskState, int]) -> str | None:
        """Why the run cannot move on by itself: downloads paused on the disk, launches held back."""
        reasons = []
        disk = self._downloader.disk_blocked if self._downloader is not None else None
        if disk is not None:
            reasons.append(disk.describe(counts.get(S.FINISHED, 0) + counts.get(S.DOWNLOADING, 0)))
        if self._last is not None and self._last.blocked:
            reasons.append(self._last.blocked)
        return "; ".join(reasons) or None

    def _health(self) -> dict[str, dict[str, Any]]:
        """Each backend's health entry for `summary` (see there)."""
        now = self.store.now()
        if self._runner is not None:
            return {name: h.summary(now) for name, h in self._runner.scheduler.health().items()}
        found = {}
        recorded = self.store.backend_health(self.id, live_within=self.leasing.lease_seconds)
        for name, (entry, live) in recorded.items():
            health = Health.from_dict(entry)
            if not live:
                health.next_try = None  # nobody will try it
                if health.state is BackendState.UNREACHABLE:
                    health.reason = f"{health.reason} (when the last run stopped)"
            found[name] = health.summary(now)
        return found

    def tasks(self) -> gpd.GeoDataFrame:
        """Every task as a GeoDataFrame in EPSG:4326 (one row per tile, our state and the job's status)."""
        rows = []
        for task in self.store.all_tasks(self.id):
            row = dataclasses.asdict(task)
            row["state"] = str(task.state)
            row["job_status"] = str(task.job_status) if task.job_status else None
            row["geometry"] = shapely.from_wkt(task.geometry) if task.geometry else None
            rows.append(row)
        columns = [f.name for f in dataclasses.fields(Task)]
        frame = pd.DataFrame(rows, columns=columns)
        return gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:4326")

    # operations -------------------------------------------------------------------------------

    def retry(self, states: Iterable[TaskState | str] = (S.FAILED,), *, downloads_only: bool = False) -> int:
        """Put tasks in ``states`` (failed by default; canceled, skipped allowed) back to pending.

        Each gets a fresh allowance of ``max_attempts`` jobs. Returns how many moved.
        With ``downloads_only``, only the failed tasks whose job finished (their download failed)
        go back to `finished`: their results are fetched again from the backend, no job is created.
        """
        if downloads_only:
            moved = 0
            for task in self.store.tasks_in(self.id, S.FAILED):
                if task.job_status is JobStatus.FINISHED and task.job_id:
                    moved += self.store.transition(task.id, S.FAILED, S.FINISHED, actor="user",
                                                   reason="download retry asked", error=None,
                                                   claimed_by=None, claim_expires=None)
            return moved
        chosen = [TaskState(s) for s in states]
        refused = [s for s in chosen if s not in TASK_RETRYABLE]
        if refused:
            raise CampaignError(f"only failed, canceled or skipped tasks can be retried, not {refused}")
        moved = 0
        for state in chosen:
            for task in self.store.tasks_in(self.id, state):
                if self.store.transition(
                    task.id,
                    state,
                    S.PENDING,
                    actor="user",
                    reason="retry asked",
                    attempt_floor=task.attempts,
                    error=None,
                ):
                    moved += 1
        return moved

    def cancel(self) -> int:
        """Stop the run, cancel every active job on its backend, and cancel every unfinished task.

        Tasks already finished keep their results (their downloads complete on the next run).
        Returns how many tasks were canceled.
        """
        self.stop()
        canceled = 0
        for task in self.store.tasks_in(self.id, TASK_CANCELABLE_JOB):
            if task.job_id and task.backend in self._backends:
                try:
                    self._backends[task.backend][1].cancel_job(task.job_id, task_id=task.id)
                except BackendError as exc:
                    log.warning(
                        "task %s (%s): could not cancel job %s: %s", task.id, task.tile_id, task.job_id, exc
                    )
            elif task.job_id:
                log.warning(
                    "task %s (%s): job %s is on backend %s, which is not configured; not canceled there",
                    task.id,
                    task.tile_id,
                    task.job_id,
                    task.backend,
                )
            if self.store.transition(
                task.id, task.state, S.CANCELED, actor="user", reason="campaign canceled"
            ):
                canceled += 1
        return canceled

    # internals --------------------------------------------------------------------------------

    def _job_spec(self, task: Task, token: str) -> tuple[dict[str, Any], str, str]:
        assert self.udp is not None
        title = f"{self.name} {task.tile_id} [{token}]"
        description = (
            f"openeo-upscale campaign {self.name!r}, tile {task.tile_id}, attempt {task.attempts} [{token}]"
        )
        return job_process(self.udp, task.parameters), title, description

    def _prepare_backend(self, client: BackendClient) -> None:
        """Store a UDP that has no namespace on the backend, as the account's own process."""
        if self.udp is not None and not self.udp.namespace:
            client.save_process(self.udp.process_id, self.udp.definition)

    def _ticked(self, result: TickResult) -> None:
        self._last = result
        self._refresh_forecast()
        if self.on_task_done is None and self.on_task_failed is None:
            return
        for event_id, task_id, to_state in self.store.arrivals(self.id, self._last_event, (S.DONE, S.FAILED)):
            self._last_event = max(self._last_event, event_id)
            callback = self.on_task_done if to_state is S.DONE else self.on_task_failed
            if callback is not None:
                try:
                    callback(self.store.task(task_id))
                except Exception:
                    log.exception("the %s callback failed for task %s", to_state, task_id)


def job_process(udp: Udp, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The ``process`` of ``POST /jobs`` (and the body of ``POST /validation``) for one task: one
    node calling the UDP (by its namespace, where it has one) with the task's parameters."""
    node: dict[str, Any] = {"process_id": udp.process_id, "arguments": dict(parameters), "result": True}
    if udp.namespace:
        node["namespace"] = udp.namespace
    return {"process_graph": {"run": node}}


def _existing(store: Store, name: str) -> int | None:
    """The id of the campaign named ``name``, None when there is none; the store's clear error when
    an earlier release left several of that name."""
    found = [c for c in store.campaigns() if c["name"] == name]
    if not found:
        return None
    return int(store.campaign(name=name)["id"])


def _store(store: Store | str | os.PathLike[str]) -> tuple[Store, bool]:
    if isinstance(store, Store):
        return store, False
    return Store.open(store), True


def _udp(udp: Udp | str | os.PathLike[str] | Mapping[str, Any], namespace: str | None) -> Udp:
    if isinstance(udp, Udp):
        return udp if namespace is None else dataclasses.replace(udp, namespace=namespace)
    if isinstance(udp, Mapping):
        return Udp.from_dict(udp, namespace)
    return Udp.from_file(Path(udp), namespace)
