"""The `openeo-upscale` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from openeo_upscale.errors import UpscaleError

if TYPE_CHECKING:
    from openeo_upscale.campaign import Campaign, RunnerInfo
    from openeo_upscale.campaign.config import CampaignConfig

EXIT_FAILED = 1
"""`run` ended with tasks that are not done: failed, canceled or left pending."""
EXIT_ERROR = 2
"""A usage, configuration or engine error."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C or SIGTERM."""
MAX_LISTED = 20
"""Failed tasks listed at the end of a run; the rest are counted."""
STOP_TIMEOUT = 10.0
"""Seconds `run` waits for the scheduler to finish its current request after Ctrl-C."""


def _backend_serve(args: argparse.Namespace) -> int:
    from openeo_upscale.backend import BackendConfig, Mode, load_config, serve
    from openeo_upscale.backend.config import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_PASSWORD,
        DEFAULT_USER,
    )

    config = load_config(args.config) if args.config else BackendConfig()
    changes: dict[str, object] = {"host": args.host, "port": args.port}
    if args.mode:
        changes["mode"] = Mode(args.mode)
    if args.state_dir:
        changes["state_dir"] = Path(args.state_dir)
    if args.udp_dir:
        changes["udp_dirs"] = (*config.udp_dirs, *(Path(d) for d in args.udp_dir))
    config = config.replace(**changes)
    url = f"http://{config.host}:{config.port}"
    print(f"openEO local backend ({config.mode.value} mode) at {url}")
    print(f"  state: {config.state_dir.resolve()}")
    demo = config.user(DEFAULT_USER) if config.users is None else None
    if demo:
        print(f"  basic auth: {DEFAULT_USER} / {DEFAULT_PASSWORD}")
        print(f"  OIDC client credentials: client id {DEFAULT_CLIENT_ID}, secret {DEFAULT_CLIENT_SECRET}")
        print(f"  python: openeo.connect({url!r}).authenticate_basic('demo', 'demo')", flush=True)
    elif config.users is None:
        print("  accounts: none. The built-in demo account is only enabled on a loopback host; name the "
              "accounts ([[users]]) in --config to serve on this one.", flush=True)
    else:
        names = ", ".join(u.name for u in config.accounts) or "none"
        print(f"  accounts: {names} (from --config)", flush=True)
    _warn_if_exposed(config.host, config.port,
                     "the local backend: anyone who can reach it and log in can run jobs on this machine")
    serve(config)
    return 0


def shown_url(store: str) -> str:
    """The store as messages show it, its password masked (`openeo_upscale.campaign.store.shown_url`)."""
    from openeo_upscale.campaign.store import shown_url as shown

    return shown(store)


def _warn_if_exposed(host: str, port: int, what: str) -> None:
    """A warning on stderr when `host` is not a loopback address: other machines can then connect."""
    from openeo_upscale.backend.config import is_loopback

    if not is_loopback(host):
        print(f"warning: --host {host} makes port {port} reachable from other machines; it serves {what}. "
              "Use --host 127.0.0.1 (the default) unless that is what you want.", file=sys.stderr, flush=True)


def _demo(args: argparse.Namespace) -> int:
    from openeo_upscale.demo import run_demo

    return run_demo(Path(args.output), udp_dir=Path(args.udp_dir) if args.udp_dir else None,
                    max_tiles=args.max_tiles, quiet=args.quiet)


def _dashboard(args: argparse.Namespace) -> int:
    from openeo_upscale.monitor.dashboard import create_app, serve

    app = create_app(args.store, args.name, tiles_url=args.tiles_url)  # a missing store fails here
    print(f"dashboard of {shown_url(args.store)} at http://{args.host}:{args.port}", flush=True)
    _warn_if_exposed(args.host, args.port, "the dashboard, which has no login: anyone who can reach it "
                     "sees the campaign's tiles, errors and backends")
    serve(app, host=args.host, port=args.port)
    return 0


def _grid(args: argparse.Namespace) -> int:
    from openeo_upscale.errors import GridError
    from openeo_upscale.grid import AoiLike, tiles, write_tiles, zone_label
    from openeo_upscale.grid.formats import vector_format

    vector_format(args.output)  # an unusable output name fails before the tiling work
    aoi: AoiLike = args.aoi
    if args.bbox is not None:
        try:
            aoi = tuple(float(v) for v in args.bbox.split(","))
        except ValueError:
            raise GridError(f"--bbox must be W,S,E,N in degrees, got {args.bbox!r}") from None
    grid = tiles(aoi, args.size, overlap=args.overlap, clip=args.clip,
                 min_coverage=args.min_coverage, max_tiles=args.max_tiles)
    path = write_tiles(grid, args.output)
    counts = grid["epsg"].value_counts().sort_index()
    zones = ", ".join(f"{zone_label(int(e))} (EPSG:{e}) {n:,}" for e, n in counts.items())
    print(f"{len(grid):,} tiles of {args.size} m in {len(counts)} zone(s): {zones or '-'}")
    print(f"total {grid['area_km2'].sum():,.1f} km²")
    print(f"wrote {path}")
    return 0


# -- campaign commands ---------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from openeo_upscale.campaign.config import load_campaign
    from openeo_upscale.monitor import LogMonitor, Monitor, TerminalMonitor

    config = load_campaign(args.config)
    if args.dry_run:
        return _dry_run(config)
    factories = config.connection_factories(os.environ)
    with _campaign_for(config, factories) as campaign:
        config.attach_backends(campaign, factories)
        monitor: Monitor = LogMonitor() if args.quiet or not sys.stdout.isatty() else TerminalMonitor()
        try:
            with _sigterm_as_interrupt():
                _watch(campaign, monitor, wait=args.wait, accept_forecast=args.accept_forecast)
        except KeyboardInterrupt:
            return _interrupted(campaign, args.config, cancel=args.cancel_on_exit)
        return _ending(campaign)


def _pilot(args: argparse.Namespace) -> int:
    """Run the pilot tiles as ordinary tasks of the campaign, then print what each cost and took,
    and the forecast of the whole campaign (kept in the store for `status`, `run` and the monitors)."""
    from openeo_upscale.campaign import TaskState
    from openeo_upscale.campaign.config import load_campaign
    from openeo_upscale.monitor import LogMonitor, Monitor, TerminalMonitor

    config = load_campaign(args.config)
    if args.tiles is not None and args.tiles < 1:
        raise _config_error(f"--tiles must be at least 1, not {args.tiles}")
    factories = config.connection_factories(os.environ)
    with _campaign_for(config, factories) as campaign:
        config.attach_backends(campaign, factories)
        chosen = campaign.pilot_tasks(args.tiles)
        left = [task.id for task in chosen if task.state is not TaskState.DONE]
        print(f"pilot: {len(chosen)} tile(s), {len(left)} to run: "
              + ", ".join(task.tile_id for task in chosen[:MAX_LISTED])
              + (" ..." if len(chosen) > MAX_LISTED else ""), flush=True)
        if left:
            monitor: Monitor = LogMonitor() if args.quiet or not sys.stdout.isatty() else TerminalMonitor()
            try:
                with _sigterm_as_interrupt():
                    _watch(campaign, monitor, wait=args.wait, only=left)
            except KeyboardInterrupt:
                return _interrupted(campaign, args.config, cancel=False)
        forecast = campaign.make_forecast(basis="pilot")
        _print_pilot(campaign, {task.id for task in chosen})
        if forecast is None:
            print("openeo-upscale: error: no pilot task got done, so there is nothing to forecast "
                  "from; `status` shows why they failed", file=sys.stderr)
            return EXIT_FAILED
        _print_forecast(forecast.to_dict(), None, campaign.limits.max_credits)
        return 0


def _print_pilot(campaign: Campaign, chosen: set[int]) -> None:
    """One row per pilot tile: what it loaded, what it cost and took, what it used and wrote."""
    from rich.console import Console
    from rich.table import Table

    from openeo_upscale.monitor.formatting import format_bytes, format_duration

    table = Table("tile", "backend", "km²", "months", "credits", "queued", "ran", "cpu", "memory",
                  "results", show_edge=False)
    for m in campaign.measurements(chosen):
        table.add_row(m.tile_id, m.backend or "-", f"{m.km2:,.1f}", f"{m.months:.1f}", f"{m.credits:,.3f}",
                      format_duration(m.queue_seconds), format_duration(m.run_seconds), m.cpu or "-",
                      m.memory or "-", format_bytes(m.output_bytes))
    Console().print(table)


def _print_forecast(forecast: dict[str, Any] | None, tracking: dict[str, Any] | None,
                    budget: float | None) -> None:
    from openeo_upscale.monitor.formatting import forecast_lines

    for line in forecast_lines(forecast, tracking, budget=budget):
        print(line)


@contextmanager
def _campaign_for(config: CampaignConfig, factories: dict[str, Any]) -> Iterator[Campaign]:
    """The configured campaign, opened from the store or created there; the store is closed afterwards.

    Several runs may start at once on a new store: one creates the campaign, the others resume it.
    """
    from openeo_upscale.campaign import Store

    store = Store.open(config.store)
    try:
        campaign = config.open_campaign(store, factories)
        if campaign.created:
            print(f"created campaign {config.name!r} with {campaign.summary()['tasks']:,} tasks in "
                  f"{shown_url(config.store)}", flush=True)
        else:
            print(f"resuming campaign {config.name!r} in {shown_url(config.store)}", flush=True)
        try:
            yield campaign
        finally:
            campaign.stop()
    finally:
        store.close()


def _dry_run(config: CampaignConfig) -> int:
    """Show what `run` would do: the tasks and their area, and each backend's answer to ``POST
    /validation`` of the first task's process graph (where its credentials are set). Nothing is
    written and no job is created. Exit code 2 when a backend refused the credentials or the graph."""
    from openeo_upscale.campaign import Campaign, Store, TaskState, validate_campaign
    from openeo_upscale.campaign.config import validation_process
    from openeo_upscale.campaign.creator import parameters_for, tile_records

    process: dict[str, Any] | None = None
    if _store_exists(config.store):
        with Store.open(config.store) as store:
            if any(c["name"] == config.name for c in store.campaigns()):
                campaign = Campaign.open(store, config.name)
                summary = campaign.summary()
                counts = ", ".join(f"{state} {n:,}" for state, n in summary["counts"].items() if n)
                print(f"campaign {config.name!r} exists in {shown_url(config.store)}: "
                      f"{summary['tasks']:,} tasks ({counts}); run resumes it")
                _print_forecast(summary.get("forecast"), summary.get("tracking"), campaign.limits.max_credits)
                if summary.get("forecast") is None:
                    print("no forecast yet: `openeo-upscale pilot` runs a few tiles and makes one")
                first = store.tasks_in(campaign.id, TaskState.PENDING, limit=1)
                if campaign.udp is not None and first:
                    process = validation_process(campaign.udp, first[0].parameters)
                return _ask_backends(config, process, "no task is pending")
    tiles = config.load_tiles()
    area = float(tiles["area_km2"].sum()) if "area_km2" in tiles.columns else None
    print(f"campaign {config.name!r}: {len(tiles):,} tasks, "
          + (f"{area:,.1f} km²" if area is not None else "area unknown (the tiles have no area_km2)"))
    records = tile_records(tiles)  # the ids checked as `run` checks them
    why_not = "the UDP is not a local file (run downloads it)"
    if config.udp is not None and config.udp.local:
        udp = config.udp.load()
        validate_campaign(udp, records, defaults=config.defaults, column_map=config.column_map)
        print(f"UDP {udp.process_id}: parameters valid for every task")
        if records:
            process = validation_process(udp, parameters_for(udp, records[0], defaults=config.defaults,
                                                             column_map=config.column_map))
    code = _ask_backends(config, process, why_not)
    print(f"store: {shown_url(config.store)} (not written)")
    return code


def _ask_backends(config: CampaignConfig, process: dict[str, Any] | None, why_not: str) -> int:
    """One line per backend: its answer to ``POST /validation`` of ``process``; 2 when any refused."""
    from openeo_upscale.campaign.config import ask_backends

    answers = ask_backends(config, process, why_not, os.environ)
    for answer in answers:
        backend = answer.backend
        print(f"backend {backend.name}: {backend.url}, {backend.parallel_jobs} parallel job(s), "
              f"auth {backend.auth.value}: {answer.verdict}")
    refused = sum(answer.refused for answer in answers)
    if refused:
        print(f"openeo-upscale: error: {refused} backend(s) would not run the campaign (see above)",
              file=sys.stderr)
        return EXIT_ERROR
    return 0


def _watch(campaign: Campaign, monitor: Any, *, wait: bool = False, accept_forecast: bool = False,
           only: list[int] | None = None) -> None:
    """Join the campaign (waiting for the runner that holds a SQLite store, with ``wait``) and refresh
    the monitor about once a second until the run ends (``accept_forecast``, ``only``: see
    `Campaign.start`)."""
    from openeo_upscale.monitor import recent_errors

    def waiting(holder: RunnerInfo) -> None:
        print(f"waiting for {holder.describe()} to finish; Ctrl-C gives up", file=sys.stderr, flush=True)

    campaign.start(wait=wait, on_wait=waiting, accept_forecast=accept_forecast, only=only)
    with monitor:
        while not campaign.wait(timeout=1.0):
            monitor.update(campaign.summary(), recent_errors(campaign.store, campaign.id))
        monitor.update(campaign.summary(), recent_errors(campaign.store, campaign.id))


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run like Ctrl-C does (only the main thread can install a handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(campaign: Campaign, config: str, *, cancel: bool) -> int:
    from openeo_upscale.campaign import TASK_ACTIVE

    if campaign.runner is None:
        print("interrupted while waiting for the runner that holds the campaign; nothing was started",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if cancel:
        canceled = campaign.cancel()
        print(f"interrupted: canceled {canceled:,} task(s) and their jobs on the backends", file=sys.stderr)
        return EXIT_INTERRUPTED
    ended = campaign.stop(timeout=STOP_TIMEOUT)
    blocked = campaign.summary().get("blocked")
    if blocked:
        print(f"not finished: {blocked}", file=sys.stderr)
    active = campaign.store.tasks_in(campaign.id, TASK_ACTIVE)
    on_backends = sum(1 for task in active if task.job_id)
    print(f"interrupted: stopped launching{'' if ended else ' (a last request is still finishing)'}; "
          f"{on_backends:,} job(s) left running on their backends. "
          f"Run `openeo-upscale run {config}` again to resume.", file=sys.stderr)
    return EXIT_INTERRUPTED


def _ending(campaign: Campaign) -> int:
    """The final report of a run and its exit code: 0 when every task is settled (done, skipped, or
    split into quadrants that are)."""
    from openeo_upscale.campaign import TaskState
    from openeo_upscale.campaign.health import BackendState, describe
    from openeo_upscale.campaign.states import TASK_SETTLED
    from openeo_upscale.monitor.terminal import line_of

    summary = campaign.summary()
    print(line_of(summary))
    counts = summary["counts"]
    unfinished = False
    if counts.get(TaskState.DONE.value):
        try:
            print(f"results: {campaign.collection()} (STAC collection)")
        except UpscaleError as exc:
            print(f"error: {exc}", file=sys.stderr)
            unfinished = True
    for name, entry in summary["backends"].items():
        health = describe(entry)
        if health is not None:
            print(f"backend {name} {health}", file=sys.stderr)
    failed = campaign.store.tasks_in(campaign.id, TaskState.FAILED)
    for task in failed[:MAX_LISTED]:
        where = ", ".join(f"{k} {v}" for k, v in (("backend", task.backend), ("job", task.job_id)) if v)
        print(f"failed: {task.tile_id} ({where or 'no job'}): {task.error or 'no reason recorded'}")
    if len(failed) > MAX_LISTED:
        print(f"... and {len(failed) - MAX_LISTED:,} more (openeo-upscale export lists them all)")
    left = {state: n for state, n in counts.items() if n and TaskState(state) not in TASK_SETTLED}
    if not left:
        return EXIT_FAILED if unfinished else 0
    print("not done: " + ", ".join(f"{state} {n:,}" for state, n in left.items()), file=sys.stderr)
    if counts.get(TaskState.PENDING.value):
        unusable = [name for name, entry in summary["backends"].items()
                    if entry.get("state") == BackendState.UNUSABLE.value]
        why = summary.get("blocked") or (
            f"backend(s) {', '.join(unusable)} unusable (see above)" if unusable
            else "they are pinned to a backend that is not configured")
        print(f"pending tasks were not launched: {why}", file=sys.stderr)
    elif summary.get("blocked"):
        print(f"not finished: {summary['blocked']}", file=sys.stderr)
    return EXIT_FAILED


def _status(args: argparse.Namespace) -> int:
    with _opened(args.store, args.name) as campaign:
        status = campaign.status()
    if args.json:
        print(json.dumps(status.to_dict(), indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    from openeo_upscale.monitor.formatting import forecast_lines

    console = Console()
    console.print(f"campaign [bold]{status.campaign}[/bold]: {status.tasks:,} tasks, "
                  f"{status.jobs:,} backend jobs ({status.retried:,} tasks retried), "
                  f"{status.credits:,.2f} credits")
    states = Table("state", "tasks", show_edge=False)
    for state, n in status.counts.items():
        if n:
            states.add_row(state, f"{n:,}")
    console.print(states)
    for line in forecast_lines(status.forecast, status.tracking, budget=campaign.limits.max_credits):
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    if status.backends:
        from openeo_upscale.campaign.health import describe

        backends = Table("backend", "active", "jobs", "credits", "runner", "tasks by state", "health",
                         show_edge=False)
        for name, entry in status.backends.items():
            by_state = ", ".join(f"{state} {n:,}" for state, n in entry.counts.items())
            runner = "-" if entry.runner is None else str(entry.runner)
            backends.add_row(name, str(entry.active), f"{entry.jobs:,}", f"{entry.credits:,.2f}",
                             runner, by_state, entry.health.get("state") or "-")
        console.print(backends)
        for name, entry in status.backends.items():
            health = describe(entry.health)
            if health is not None:
                console.print(f"backend {name} {health}", soft_wrap=True, markup=False, highlight=False)
    if status.runners:
        runners = Table("runner", "host", "pid", "since", "heartbeat", show_edge=False)
        for live in status.runners:
            runners.add_row(str(live.id), live.host, str(live.pid), live.since,
                            f"{live.heartbeat_age_s:.0f} s ago")
        console.print(runners)
    else:
        console.print("no runner is running the campaign")
    return 0


def _store_upgrade(args: argparse.Namespace) -> int:
    from openeo_upscale.campaign import Store
    from openeo_upscale.errors import StoreError

    if not _store_exists(args.store):
        raise StoreError(f"no store at {shown_url(args.store)}")
    with Store.open(args.store) as store:
        prepared = store.prepared
    assert prepared is not None
    if prepared.upgraded:
        print(f"upgraded {shown_url(args.store)} from schema version {prepared.found} to {prepared.version}")
    else:
        print(f"{shown_url(args.store)} is at schema version {prepared.version}: nothing to do")
    return 0


def _store_repair(args: argparse.Namespace) -> int:
    from openeo_upscale.campaign import Store
    from openeo_upscale.errors import StoreError

    if not _store_exists(args.store):
        raise StoreError(f"no store at {shown_url(args.store)}")
    with Store.open(args.store) as store:
        renamed = store.repair_duplicates()
    if not renamed:
        print("no two campaigns share a name: nothing to repair")
        return 0
    for line in renamed:
        print(line)
    return 0


def _retry(args: argparse.Namespace) -> int:
    if args.downloads:
        if args.state:
            raise _config_error("--downloads retries failed downloads only; it takes no --state")
        with _opened(args.store, args.name) as campaign:
            moved = campaign.retry(downloads_only=True)
        print(f"{moved:,} failed download(s) back to finished; `openeo-upscale run` fetches their results "
              "again (no new job)")
        return 0
    from openeo_upscale.campaign.states import TASK_RETRYABLE

    states = args.state or [TASK_RETRYABLE[0].value]
    with _opened(args.store, args.name) as campaign:
        moved = campaign.retry(states)
    print(f"{moved:,} task(s) back to pending ({', '.join(states)}); `openeo-upscale run` runs them")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from openeo_upscale.campaign.config import load_campaign

    config = load_campaign(args.config)
    with _opened(args.store, args.name or config.name) as campaign:
        config.attach_backends(campaign, config.connection_factories(os.environ))
        canceled = campaign.cancel()
    print(f"canceled {canceled:,} task(s) and their jobs")
    return 0


def _export(args: argparse.Namespace) -> int:
    from openeo_upscale.campaign.exchange import export_tasks

    with _opened(args.store, args.name) as campaign:
        rows = export_tasks(campaign.store, campaign.id, args.output, format=args.format)
    print(f"wrote {rows:,} task(s) to {args.output}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from openeo_upscale.campaign import Campaign
    from openeo_upscale.campaign.config import UdpConfig
    from openeo_upscale.campaign.exchange import read_job_rows, task_rows_of, tile_records_of
    from openeo_upscale.campaign.store import Adoption
    from openeo_upscale.campaign.takeover import read_takeover

    defaults = _json_object(args.defaults, "--defaults") if args.defaults else {}
    udp = UdpConfig(file=Path(args.udp) if args.udp else None, namespace=args.namespace).load()
    adopt: list[Adoption] = []
    backends: list[str] = []
    if args.take_over:
        table = read_takeover(args.file, pin_from=args.pin_from)
        records, adopt, backends = table.tiles, table.adoptions, table.backends
    else:
        rows = read_job_rows(args.file)
        records = tile_records_of(task_rows_of(rows, args.pin_from, source=args.file))
        jobs = sum(1 for row in rows if row.get("id") is not None and "upscale_state" not in row
                   and row.get("status") in ("created", "queued_for_start", "queued", "running", "finished"))
        if jobs:
            print(f"note: the table holds {jobs:,} job(s) of a MultiBackendJobManager that are running or "
                  "finished; they are run again as new jobs. Use --take-over to adopt them instead")
    campaign = Campaign.create(args.store, records, udp, name=args.name, defaults=defaults,
                               output_dir=args.output_dir, on_exists="error", adopt=adopt)
    with campaign:
        summary = campaign.summary()
    total = summary["tasks"]
    if not args.take_over:
        print(f"created campaign {args.name!r} with {total:,} task(s) in {shown_url(args.store)}; "
              "run it with a campaign TOML naming this store and campaign")
        return 0
    states = ", ".join(f"{count:,} {state}" for state, count in summary["counts"].items() if count)
    print(f"took over campaign {args.name!r} with {total:,} task(s) in {shown_url(args.store)}: {states}; "
          f"{len([a for a in adopt if a.job_id])} job(s) adopted")
    if backends:
        print(f"run it with a campaign TOML naming this store and campaign, whose [[backends]] include "
              f"{', '.join(backends)} (the job table's backend_name): their jobs are followed there, "
              "none is created again")
    else:
        print("run it with a campaign TOML naming this store and campaign")
    return 0


def _report(args: argparse.Namespace) -> int:
    from openeo_upscale.monitor.report import write_report

    with _existing_store(args.store) as store:
        campaign_id = int(store.campaign(name=args.name)["id"])
        path = write_report(store, campaign_id, args.output)
    print(f"wrote {path}")
    return 0


def _results_verify(args: argparse.Namespace) -> int:
    from openeo_upscale.campaign import TaskState
    from openeo_upscale.campaign.mosaic import verify_results

    with _existing_store(args.store) as store:
        campaign_id = int(store.campaign(name=args.name)["id"])
        problems = verify_results(store, campaign_id)
        checked = sum(len(task.result_paths or []) for task in store.all_tasks(campaign_id)
                      if task.state is TaskState.DONE)
    if not problems:
        print(f"all {checked:,} file(s) of the done tasks are present and match their item.json")
        return 0
    for problem in problems:
        print(problem)
    print(f"{len(problems):,} problem(s) among {checked:,} file(s)")
    return EXIT_FAILED


def _results_mosaic(args: argparse.Namespace) -> int:
    from openeo_upscale.campaign.mosaic import build_mosaic

    with _existing_store(args.store) as store:
        campaign_id = int(store.campaign(name=args.name)["id"])
        written = build_mosaic(store, campaign_id, args.output)
    if not written:
        print("no GeoTIFF results of done tasks: nothing to mosaic")
    for path in written:
        print(f"wrote {path}")
    return 0


@contextmanager
def _existing_store(store: str) -> Iterator[Any]:
    """An existing store (`StoreError` when there is none: a typo must not create one), closed
    afterwards."""
    from openeo_upscale.campaign import Store
    from openeo_upscale.errors import StoreError

    if not _store_exists(store):
        raise StoreError(f"no store at {shown_url(store)}")
    with Store.open(store) as opened:
        yield opened


@contextmanager
def _opened(store: str, name: str | None) -> Iterator[Campaign]:
    """A campaign of an existing store, closed afterwards."""
    from openeo_upscale.campaign import Campaign

    with _existing_store(store) as opened, Campaign.open(opened, name) as campaign:
        yield campaign


def _store_exists(store: str) -> bool:
    return "://" in store or Path(store).exists()


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _config_error(f"{option} must be a JSON object: {exc}") from exc
    if not isinstance(value, dict):
        raise _config_error(f"{option} must be a JSON object, not {text}")
    return value


def _config_error(message: str) -> UpscaleError:
    from openeo_upscale.errors import ConfigError

    return ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    from openeo_upscale.campaign.states import TASK_RETRYABLE

    parser = argparse.ArgumentParser(prog="openeo-upscale", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    backend = sub.add_parser("backend", help="the local openEO backend")
    backend_sub = backend.add_subparsers(dest="backend_command", required=True)
    serve = backend_sub.add_parser("serve", help="serve the local openEO backend")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--mode", choices=["simulated", "real"], help="how jobs compute (default simulated)")
    serve.add_argument("--state-dir", help="folder for jobs, logs and results (default .openeo-local)")
    serve.add_argument("--udp-dir", action="append", help="folder of UDP JSON files (repeatable)")
    serve.add_argument("--config", help="backend TOML file (users, limits, simulation, faults)")
    serve.set_defaults(func=_backend_serve)

    demo = sub.add_parser("demo", help="the reference workflow on the embedded local backend: a BAP "
                                       "composite over Antwerp, mosaic and report")
    demo.add_argument("-o", "--output", default="demo-output", help="output folder (default demo-output)")
    demo.add_argument("--udp-dir", help="a folder holding the APEx bap_composite.json to use instead of "
                                        "the project's own BAP UDP")
    demo.add_argument("--max-tiles", type=int, help="run only the first N tiles")
    demo.add_argument("--quiet", action="store_true", help="plain log lines instead of the live panel")
    demo.set_defaults(func=_demo)

    dashboard = sub.add_parser("dashboard", help="serve a live web dashboard of a campaign (read-only)")
    dashboard.add_argument("store", help="SQLite file or postgresql:// URL")
    dashboard.add_argument("--name", help="the campaign (when the store holds several)")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    dashboard.add_argument("--tiles-url",
                           help="XYZ basemap tile URL, .../{z}/{x}/{y}.png (default: none, works offline)")
    dashboard.set_defaults(func=_dashboard)

    grid = sub.add_parser("grid", help="cut an area of interest into UTM tiles")
    where = grid.add_mutually_exclusive_group(required=True)
    where.add_argument("--bbox", help="W,S,E,N in degrees (write --bbox=W,S,E,N when W is negative)")
    where.add_argument("--aoi", help="AOI file: GeoJSON, GeoPackage, GeoParquet or Shapefile")
    grid.add_argument("--size", type=int, default=5000, help="tile edge in metres (default 5000)")
    grid.add_argument("--overlap", type=int, default=0, help="metres added on every side (default 0)")
    grid.add_argument("--clip", action="store_true", help="clip tile geometries to the AOI")
    grid.add_argument("--min-coverage", type=float, default=0.0,
                      help="drop tiles with a smaller share covered by the AOI (0..1, default 0)")
    grid.add_argument("--max-tiles", type=int, default=2_000_000,
                      help="refuse grids with more tiles (default 2000000)")
    grid.add_argument("-o", "--output", required=True, help="tiles.geojson, tiles.gpkg or tiles.parquet")
    grid.set_defaults(func=_grid)

    run = sub.add_parser("run", help="run a campaign described in a TOML file (resumes it when it exists)")
    run.add_argument("config", help="campaign TOML file (see openeo_upscale/campaign/config.py)")
    run.add_argument("--quiet", action="store_true", help="plain log lines instead of the live panel")
    run.add_argument("--cancel-on-exit", action="store_true",
                     help="on Ctrl-C/SIGTERM cancel the running jobs (default: leave them; run resumes)")
    run.add_argument("--dry-run", action="store_true",
                     help="show the tasks and their area; write nothing, start no job")
    run.add_argument("--wait", action="store_true",
                     help="on a SQLite store held by another runner, wait for it instead of refusing")
    run.add_argument("--accept-forecast", action="store_true",
                     help="run although the forecast exceeds max_credits (the run still stops when "
                          "the budget is spent)")
    run.set_defaults(func=_run)

    pilot = sub.add_parser("pilot", help="run a few tiles spread over the campaign and forecast its "
                                         "credits, time and volume")
    pilot.add_argument("config", help="campaign TOML file (see openeo_upscale/campaign/config.py)")
    pilot.add_argument("--tiles", type=int, default=None,
                       help="how many tiles (default: about the square root of the tasks, 4 to 16)")
    pilot.add_argument("--quiet", action="store_true", help="plain log lines instead of the live panel")
    pilot.add_argument("--wait", action="store_true",
                       help="on a SQLite store held by another runner, wait for it instead of refusing")
    pilot.set_defaults(func=_pilot)

    status = sub.add_parser("status", help="counts per state, per backend and credits of a campaign")
    status.add_argument("store", help="SQLite file or postgresql:// URL")
    status.add_argument("--name", help="the campaign (when the store holds several)")
    status.add_argument("--json", action="store_true", help="print the summary as JSON")
    status.set_defaults(func=_status)

    retry = sub.add_parser("retry", help="put failed (or canceled, skipped) tasks back to pending")
    retry.add_argument("store", help="SQLite file or postgresql:// URL")
    retry.add_argument("--name", help="the campaign (when the store holds several)")
    retry.add_argument("--state", action="append", choices=[state.value for state in TASK_RETRYABLE],
                       help="tasks in this state (repeatable; default failed)")
    retry.add_argument("--downloads", action="store_true",
                       help="only the failed tasks whose job finished: download their results again "
                       "(no new job)")
    retry.set_defaults(func=_retry)

    cancel = sub.add_parser("cancel", help="cancel every unfinished task and its job on the backend")
    cancel.add_argument("store", help="SQLite file or postgresql:// URL")
    cancel.add_argument("--config", required=True, help="campaign TOML with the backends to cancel jobs on")
    cancel.add_argument("--name", help="the campaign (default: the name in the TOML)")
    cancel.set_defaults(func=_cancel)

    export = sub.add_parser("export", help="write the tasks as an openeo client job table (CSV or Parquet)")
    export.add_argument("store", help="SQLite file or postgresql:// URL")
    export.add_argument("-o", "--output", required=True, help="tasks.csv or tasks.parquet")
    export.add_argument("--format", choices=["csv", "parquet"], help="default: from the file suffix")
    export.add_argument("--name", help="the campaign (when the store holds several)")
    export.set_defaults(func=_export)

    imp = sub.add_parser(
        "import", help="create a campaign from an exported or openeo client job table",
        description="Create a campaign from a job table: one exported by `openeo-upscale export`, or one "
        "written by the openeo client's MultiBackendJobManager (job_tracker.csv). By default every row "
        "becomes a pending task. With --take-over, a MultiBackendJobManager campaign is taken over where "
        "it stands: finished jobs are downloaded, created/queued/running ones adopted by job id (never "
        "created twice), error rows fail (ready for `retry`), canceled/skipped rows keep that state, "
        "not_started rows are pending. Stop the manager first. Nothing is asked of a backend here: "
        "the next `openeo-upscale run` follows the adopted jobs on the backends of its TOML, whose "
        "names must be the table's backend_name values.")
    imp.add_argument("file", help="job table: CSV or (Geo)Parquet")
    imp.add_argument("--store", required=True, help="SQLite file or postgresql:// URL")
    imp.add_argument("--udp", help="the UDP's process document (JSON file)")
    imp.add_argument("--namespace",
                     help="where the backends find the UDP (without --udp, it is downloaded from there)")
    imp.add_argument("--name", default="campaign", help="campaign name (default campaign)")
    imp.add_argument("--defaults", help="UDP parameter values for every task, as a JSON object")
    imp.add_argument("--output-dir", help="where results go (default <name>-results)")
    imp.add_argument("--pin-from", help="pin each task to the backend in this column (e.g. backend_name)")
    imp.add_argument("--take-over", action="store_true",
                     help="take over the job ids and statuses of a MultiBackendJobManager job table instead "
                     "of running every row again (see the description above and docs/campaign.md)")
    imp.set_defaults(func=_import)

    store_cmd = sub.add_parser("store", help="look after a store: upgrade its schema, repair duplicates")
    store_sub = store_cmd.add_subparsers(dest="store_command", required=True)
    upgrade = store_sub.add_parser("upgrade", help="upgrade a store to this version's schema (opening it "
                                   "does the same)")
    upgrade.add_argument("store", help="SQLite file or postgresql:// URL")
    upgrade.set_defaults(func=_store_upgrade)
    repair = store_sub.add_parser("repair", help="rename campaigns that share a name (an earlier release "
                                  "could create two at once), keeping the most advanced one's name")
    repair.add_argument("store", help="SQLite file or postgresql:// URL")
    repair.set_defaults(func=_store_repair)

    report = sub.add_parser("report", help="write a self-contained HTML report of a campaign")
    report.add_argument("store", help="SQLite file or postgresql:// URL")
    report.add_argument("-o", "--output", default="report.html", help="HTML file (default report.html)")
    report.add_argument("--name", help="the campaign (when the store holds several)")
    report.set_defaults(func=_report)

    results = sub.add_parser("results", help="check or mosaic the downloaded results of a campaign")
    results_sub = results.add_subparsers(dest="results_command", required=True)
    verify = results_sub.add_parser("verify", help="check the done tasks' files against their item.json "
                                    "(exit 1 when any is missing or corrupt)")
    verify.add_argument("store", help="SQLite file or postgresql:// URL")
    verify.add_argument("--name", help="the campaign (when the store holds several)")
    verify.set_defaults(func=_results_verify)
    mosaic = results_sub.add_parser("mosaic", help="a COG per date and band over the whole area, "
                                    "and a PNG quick-look per date")
    mosaic.add_argument("store", help="SQLite file or postgresql:// URL")
    mosaic.add_argument("--name", help="the campaign (when the store holds several)")
    mosaic.add_argument("-o", "--output", help="folder (default: the campaign's output folder/mosaic)")
    mosaic.set_defaults(func=_results_mosaic)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except UpscaleError as exc:
        print(f"openeo-upscale: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
