"""One runner against three runners sharing one campaign on PostgreSQL, on the same workload.

Each run measures both configurations one after the other (the order alternates between runs),
each on two fresh local backends and a fresh PostgreSQL database:

- `--jobs` `max_ndvi` tiles of 5 km (the first tiles of `campaign_vs_anchor.workload_tiles`, over
  Belgium), ``temporal_extent`` 2023-05-01..2023-07-01 as a default;
- backends ``a`` and ``b`` with ``parallel_jobs=5`` each, 10 slots in all (each backend has 8 run
  slots, so the campaign's limit is what binds);
- simulated jobs of 60 simulated seconds x (1 +- `--jitter` 0.2) x `--time-scale` 0.1, so
  4.8-7.2 s of wall time (6 s on average: 1000 jobs over 10 slots take about 10 minutes),
  after 1 simulated second (0.04 s) in the backend's queue. The jitter is seeded on the job's
  extent and attempt, so both configurations get the very same run times.

A configuration is one campaign TOML (``store`` a ``postgresql://`` URL, ``tiles`` a GeoParquet
file, ``[[backends]]`` with ``auth = "basic"`` reading the demo account from environment
variables) and 1 or 3 ``openeo-upscale run campaign.toml --quiet`` processes started at the same
moment: each imports everything, says it is ready, and starts the command once all are (as
`tests.campaign.runner_child` does; the same few lines are here, `--runner`, because they also
count statements). ``[polling]`` is scaled with the jobs, ``min_interval = 0.1`` and
``max_interval = 5``: the package's defaults (0.5 and 30 s) are meant for jobs of minutes, and a
0.1 s floor on 6 s jobs is the grain of 0.5 s on a 30 s job. The engine's own cost of a slot
turnover (seeing the end, claiming the slot, creating and starting the next job, and the backend's
queue) is about 0.2 s of wall time on the development VM whatever the job length, so makespan /
lower bound is about 1 + 0.2 s / job length plus the ramps at both ends: 1.17 with 2.25 s jobs
(``--time-scale 0.0375``). ``[leasing] lease_seconds`` is the default (30 s; heartbeats every
2 s). One runner creates the campaign, the others resume it.

The backends run in threads of this process and count requests by route at the server
(`campaign_vs_anchor.count_requests`). Per configuration, as the median over `--runs` runs:

- **makespan**: from the first job requested (the earliest ``requested`` of the store's ledger:
  the first client token recorded) to the last task done (the latest event into ``done``: its
  results are on disk), on the store's clock; campaign creation and imports are outside it.
- **lower bound**: ``max(sum of run times / 10 slots, longest run time)``, each job's run time
  (``started`` to ``finished``) read from the backend's own state database (``jobs.duration``),
  as campaign_vs_anchor.py computes it: the backends' queue time and the downloads are outside
  the bound. And makespan / lower bound (goal: 1.05 or less for both).
- **requests per job** at the servers, by route and in all, with and without the asset downloads
  (``GET .../results/assets/{name}``); logins and capabilities count too. Goal: 3 runners at most
  1.2 x 1 runner.
- **statements per task**, counted in every runner process: a SQLAlchemy ``before_cursor_execute``
  listener on the `Engine` class counts each statement the store sends, by its first word (an
  ``executemany`` counts once per parameter set, as the server runs it), ``begin`` events count
  transactions, and pool ``checkout`` less ``connect`` events count the pre-ping ``SELECT 1``
  (sent by the pool, outside those events). As a cross-check from the server,
  ``pg_stat_database`` of the benchmark's database before and after (``xact_commit +
  xact_rollback``, tuples inserted, updated and deleted), read once its connections are gone.
  Each pre-ping is a transaction of its own at the server, so ``xact_commit + xact_rollback`` is
  about transactions plus pings. ``pg_stat_statements`` is not loaded on the development server.
- **CPU seconds per job**, summed over the runner processes: ``time.process_time()`` of each from
  the moment the command starts to its end (all threads; imports excluded), and the
  ``RUSAGE_CHILDREN`` delta of this process around the configuration (imports included).
- also: tasks done, jobs, peak jobs at once per backend from the ledger's intervals (a job holds a
  slot from ``requested`` to ``finished``: never more than ``parallel_jobs``), and how the work
  was divided: events per actor (``scheduler@<runner id>``, ``downloader@<runner id>``) and jobs
  launched per runner (the ledger's ``runner_id``); and where a job's slot time goes (median and
  95th percentile over the jobs): token to the backend's queue (create and start), the backend's
  queue, the job's end on the backend to the campaign seeing it (the slot is free again), then to
  its results on disk, and the share of the 10 slots the campaign held over the makespan.

    .venv/bin/python benchmarks/runners.py                       # 1000 jobs, 3 runs (~70 min)
    .venv/bin/python benchmarks/runners.py --jobs 60 --runs 1    # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from campaign_vs_anchor import (
    MAX_NDVI_URL,
    SHARED_UDP,
    TEMPORAL_EXTENT,
    RequestCounter,
    count_requests,
    job_records,
    simulation,
    workload_tiles,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "runners.json"
BACKENDS = {"a": 5, "b": 5}
"""parallel_jobs per backend: 10 slots in all."""
RUN_SLOTS = 8
"""Run slots of each local backend: more than parallel_jobs, so the campaign's limit binds."""
CONFIGURATIONS = (1, 3)
"""Runner processes per configuration."""
PG_HOST, PG_PORT, PG_USERS, PG_ADMIN_DATABASE = "127.0.0.1", 5432, ("postgres", "root"), "test"
USER_ENV, PASSWORD_ENV = "BENCH_RUNNERS_USERNAME", "BENCH_RUNNERS_PASSWORD"
CAMPAIGN = "runners"
START_DEADLINE = 120.0
"""Seconds the runner processes may take to import everything and be ready."""
GO_POLL = 0.002
"""Seconds between two looks of a runner for the go file."""
ASSET_ROUTE = "/results/assets/{name}"


# ----- one runner process (--runner) --------------------------------------------------------

class StatementCounter:
    """Counts what every SQLAlchemy engine of this process sends: statements, transactions, pings."""

    def __init__(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        from sqlalchemy.pool import Pool

        self.statements: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self._lock = threading.Lock()
        event.listen(Engine, "before_cursor_execute", self._execute)
        for name in ("begin", "commit", "rollback"):
            event.listen(Engine, name, self._bump(name))
        for name in ("connect", "checkout"):
            event.listen(Pool, name, self._bump(name))

    def _execute(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                 executemany: bool) -> None:
        verb = (statement.split(None, 1) or ["?"])[0].upper()
        with self._lock:
            self.statements[verb] += len(parameters) if executemany else 1
            self.events["executemany"] += int(executemany)

    def _bump(self, name: str) -> Any:
        def bump(*_: Any) -> None:
            with self._lock:
                self.events[name] += 1
        return bump

    def report(self) -> dict[str, Any]:
        with self._lock:
            events = dict(self.events)
            pings = events.get("checkout", 0) - events.get("connect", 0)
            return {"statements": sum(self.statements.values()), "by_verb": dict(self.statements),
                    "transactions": events.get("begin", 0), "pings": pings, "events": events}


def peak_rss_mb() -> float | None:
    """This process's own peak resident memory (``VmHWM``; ``ru_maxrss`` would count the benchmark
    process it was forked from, which ``exec`` does not reset)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def runner(spec_path: Path) -> int:
    """Entry point of a runner process: import, say ready, wait for go, run the CLI, report."""
    spec = json.loads(spec_path.read_text())
    # What `openeo-upscale run` imports on its way, imported before "ready" so that it stays out
    # of the measured CPU time.
    import openeo_upscale.campaign
    import openeo_upscale.campaign.config
    import openeo_upscale.monitor  # noqa: F401
    from openeo_upscale.cli import main as cli_main

    counter = StatementCounter()
    Path(spec["ready"]).write_text("ready")
    go = Path(spec["go"])
    while not go.exists():
        time.sleep(GO_POLL)
    cpu0, t0 = time.process_time(), time.perf_counter()
    code = 1
    try:
        code = cli_main(spec["command"])
    finally:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        report = {"pid": os.getpid(), "code": code, "wall_s": time.perf_counter() - t0,
                  "cpu_run_s": time.process_time() - cpu0, "cpu_total_s": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mb": peak_rss_mb(), **counter.report()}
        Path(spec["report"]).write_text(json.dumps(report))
    return code


# ----- PostgreSQL ---------------------------------------------------------------------------

def admin_connection() -> tuple[Any, str]:
    """An autocommit connection to the admin database, and the user it worked for."""
    import psycopg

    problems = []
    for user in PG_USERS:
        try:
            return psycopg.connect(host=PG_HOST, port=PG_PORT, user=user, dbname=PG_ADMIN_DATABASE,
                                   connect_timeout=3, autocommit=True), user
        except psycopg.OperationalError as exc:
            problems.append(f"{user}: {str(exc).strip()}")
    raise SystemExit(f"PostgreSQL at {PG_HOST}:{PG_PORT} not reachable: {'; '.join(problems)}")


STAT_COLUMNS = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted",
                "tup_updated", "tup_deleted")


def database_stats(admin: Any, name: str, *, drain: float = 10.0) -> dict[str, int]:
    """`pg_stat_database` counters of ``name``, once no session is connected to it any more (a
    backend flushes its counters before it leaves `pg_stat_activity`)."""
    deadline = time.monotonic() + drain
    while time.monotonic() < deadline:
        row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
        if not row[0]:
            break
        time.sleep(0.05)
    columns = ", ".join(f"coalesce({c}, 0)" for c in STAT_COLUMNS)
    row = admin.execute(f"SELECT {columns} FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()
    return dict(zip(STAT_COLUMNS, (int(v) for v in row or [0] * len(STAT_COLUMNS)), strict=True))


# ----- one configuration --------------------------------------------------------------------

def campaign_toml(path: Path, store: str, tiles: Path, urls: dict[str, str],
                  args: argparse.Namespace) -> None:
    """The campaign TOML a user would write for this workload (credentials in environment variables)."""
    from openeo_upscale.campaign import Leasing

    entries = "".join(f"""
[[backends]]
name = "{name}"
url = "{url}"
parallel_jobs = {BACKENDS[name]}
auth = "basic"
username_env = "{USER_ENV}"
password_env = "{PASSWORD_ENV}"
""" for name, url in urls.items())
    path.write_text(f"""store = {json.dumps(store)}
name = "{CAMPAIGN}"
output_dir = "results"
tiles = {json.dumps(str(tiles))}

[udp]
file = {json.dumps(str(SHARED_UDP / "max_ndvi.json"))}
namespace = "{MAX_NDVI_URL}"

[defaults]
temporal_extent = {json.dumps(TEMPORAL_EXTENT)}

[polling]
min_interval = {args.min_interval}
max_interval = {args.max_interval}

[leasing]
lease_seconds = {Leasing().lease_seconds}
{entries}""")


def start_team(count: int, toml: Path, work: Path) -> tuple[list[subprocess.Popen[bytes]], list[Path]]:
    """``count`` runner processes on ``toml``, imported and ready; they start when ``work/go`` appears."""
    env = {**os.environ, USER_ENV: "demo", PASSWORD_ENV: "demo"}
    processes, reports, ready = [], [], []
    for n in range(count):
        spec: dict[str, Any] = {
            "ready": str(work / f"ready-{n}"), "go": str(work / "go"),
            "report": str(work / f"runner-{n}.json"), "command": ["run", str(toml), "--quiet"]}
        spec_path = work / f"runner-{n}-spec.json"
        spec_path.write_text(json.dumps(spec))
        with (work / f"runner-{n}.log").open("wb") as log:
            processes.append(subprocess.Popen([sys.executable, __file__, "--runner", str(spec_path)],
                                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        reports.append(Path(spec["report"]))
        ready.append(Path(spec["ready"]))
    deadline = time.monotonic() + START_DEADLINE
    while not all(path.exists() for path in ready):
        dead = [n for n, p in enumerate(processes) if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            stop(processes)
            which = dead[0] if dead else 0
            why = "died" if dead else f"not ready within {START_DEADLINE:g} s"
            raise RuntimeError(f"runner {which} {why}:\n{tail(work, which)}")
        time.sleep(0.01)
    return processes, reports


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def tail(work: Path, n: int, lines: int = 30) -> str:
    path = work / f"runner-{n}.log"
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return f"--- runner {n}:\n" + "\n".join(text[-lines:])


def run_team(count: int, toml: Path, work: Path, timeout: float) -> tuple[list[dict[str, Any]], float, float]:
    """Start ``count`` runners together and wait for all; their reports, wall seconds, CPU of the children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    processes, report_paths = start_team(count, toml, work)
    try:
        t0 = time.perf_counter()
        (work / "go").write_text("go")
        deadline = t0 + timeout
        for n, process in enumerate(processes):
            try:
                process.wait(timeout=max(0.1, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"runner {n} did not end within {timeout} s\n{tail(work, n)}") from None
        wall = time.perf_counter() - t0
    finally:
        stop(processes)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    reports = []
    for n, (process, path) in enumerate(zip(processes, report_paths, strict=True)):
        if process.returncode != 0 or not path.exists():
            raise RuntimeError(f"runner {n} failed ({process.returncode}):\n{tail(work, n)}")
        reports.append(json.loads(path.read_text()))
    return reports, wall, cpu


def peak_jobs(ledger: list[Any], now: Any) -> dict[str, int]:
    """Per backend, the most jobs held at once: a job holds its slot from ``requested`` to ``finished``."""
    changes: dict[str, list[tuple[Any, int]]] = {}
    for row in ledger:
        changes.setdefault(row.backend, []).extend([(row.requested, 1), (row.finished or now, -1)])
    peaks = {}
    for backend, moments in changes.items():
        level = peak = 0
        for _, change in sorted(moments, key=lambda m: (m[0], m[1])):  # an end before a start
            level += change
            peak = max(peak, level)
        peaks[backend] = peak
    return peaks


def from_store(url: str) -> dict[str, Any]:
    """What the campaign's store says once every runner has ended."""
    from openeo_upscale.campaign import Store, TaskState

    with Store.open(url) as store:
        campaign_id = next(int(c["id"]) for c in store.campaigns() if c["name"] == CAMPAIGN)
        ledger = list(store.ledger(campaign_id))
        events = [e for task in store.all_tasks(campaign_id) for e in store.events_of(task.id)]
        runners = store.runners(campaign_id)
        counts = {state.value: n for state, n in store.counts(campaign_id).items() if n}
        now = store.now()
    done_at = {e.task_id: e.at for e in events if e.to_state is TaskState.DONE}
    done = list(done_at.values())
    first = min((row.requested for row in ledger), default=None)
    jobs = [{"backend": row.backend, "job_id": row.job_id, "requested": row.requested.timestamp(),
             "finished": row.finished.timestamp() if row.finished else None,
             "done": done_at[row.task_id].timestamp() if row.task_id in done_at else None}
            for row in ledger]
    actors = Counter(e.actor for e in events)
    work = {}
    for info in runners:
        launched = sum(1 for row in ledger if row.runner_id == info.id)
        mine = {actor.split("@")[0]: n for actor, n in actors.items() if actor.endswith(f"@{info.id}")}
        work[str(info.id)] = {"pid": info.pid, "jobs_launched": launched, "events": mine,
                              "stop_reason": info.stop_reason}
    return {
        "makespan_s": (max(done) - first).total_seconds() if done and first else None,
        "counts": counts,
        "ledger_jobs": len(ledger),
        "events": len(events),
        "peak_jobs": peak_jobs(ledger, now),
        "events_by_actor": dict(actors.most_common()),
        "work_by_runner": work,
        "jobs": jobs,
    }


def measure(count: int, args: argparse.Namespace, tiles_path: Path, counters: list[RequestCounter],
            admin: Any, pg_user: str, tmp: Path) -> dict[str, Any]:
    from psycopg import sql

    from openeo_upscale.backend import BackendConfig, LocalBackend

    work = tmp / f"runners-{count}"
    work.mkdir()
    database = f"bench_runners_{uuid.uuid4().hex[:12]}"
    url = f"postgresql://{pg_user}@{PG_HOST}:{PG_PORT}/{database}"
    backends: dict[str, LocalBackend] = {}
    first = len(counters)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        for name in BACKENDS:
            config = BackendConfig(state_dir=work / f"backend-{name}", udp_dirs=(SHARED_UDP,),
                                   simulation=simulation(args), run_slots=RUN_SLOTS)
            backends[name] = LocalBackend(config).start()
        mine = counters[first:]
        toml = work / "campaign.toml"
        campaign_toml(toml, url, tiles_path, {n: b.url for n, b in backends.items()}, args)
        stats_before = database_stats(admin, database)
        reports, wall, cpu_children = run_team(count, toml, work, args.timeout)
        stats_after = database_stats(admin, database)
        records = {n: job_records(b.config.state_dir) for n, b in backends.items()}
        store = from_store(url)
    finally:
        for b in backends.values():
            b.stop()
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    return figures(count, args, store, records, mine, reports, wall, cpu_children,
                   {k: stats_after[k] - stats_before[k] for k in STAT_COLUMNS})


def phases(jobs: list[dict[str, Any]], by_backend: dict[str, list[dict[str, Any]]], slots: int,
           makespan: float) -> dict[str, Any]:
    """Where a job's slot time goes, medians and 95th percentiles over the jobs, in seconds: from its
    token to its start on the backend (create and start), the backend's queue, from its end on the
    backend to the campaign seeing it (the slot is free again), then to its results on disk; and
    the share of the slots the campaign held over the makespan. Backend times are its own clock,
    the store's the runners'; both are this machine's."""
    on_backend = {(name, str(j["id"])): j for name, rows in by_backend.items() for j in rows}
    spans: dict[str, list[float]] = {"to_backend_queue": [], "backend_queue": [], "seen_after_end": [],
                                     "download": []}
    held = 0.0
    for job in jobs:
        record = on_backend.get((job["backend"], str(job["job_id"])))
        if job["finished"] is not None:
            held += job["finished"] - job["requested"]
        if record is None or record["status"] != "finished" or job["finished"] is None:
            continue
        spans["to_backend_queue"].append(record["queued_at"] - job["requested"])
        spans["backend_queue"].append(record["started_at"] - record["queued_at"])
        spans["seen_after_end"].append(job["finished"] - record["finished_at"])
        if job["done"] is not None:
            spans["download"].append(job["done"] - job["finished"])
    found: dict[str, Any] = {}
    for name, values in spans.items():
        if values:
            values.sort()
            found[name] = {"median": round(statistics.median(values), 3),
                           "p95": round(values[min(len(values) - 1, int(0.95 * len(values)))], 3)}
    found["slots_held_share"] = round(held / (slots * makespan), 4) if makespan else None
    return found


def figures(count: int, args: argparse.Namespace, store: dict[str, Any],
            by_backend: dict[str, list[dict[str, Any]]], counters: list[RequestCounter],
            reports: list[dict[str, Any]], wall: float, cpu_children: float,
            server: dict[str, int]) -> dict[str, Any]:
    """The per-run figures of one configuration."""
    records = [j for rows in by_backend.values() for j in rows]
    finished = [j for j in records if j["status"] == "finished"]
    run_times = [j["duration"] for j in finished]
    slots = sum(BACKENDS.values())
    lower = max(sum(run_times) / slots, max(run_times, default=0.0))
    # A job holds one of the campaign's slots while the backend queues it too, and no engine can
    # make that queue shorter: the bound that counts it is still a bound, and a tighter one.
    held = [j["duration"] + max(0.0, j["started_at"] - j["queued_at"]) for j in finished]
    lower_queued = max(sum(held) / slots, max(held, default=0.0))
    per_route: Counter[str] = Counter()
    for counter in counters:
        per_route.update(counter.counts)
    total = sum(per_route.values())
    assets = sum(n for route, n in per_route.items() if route.endswith(ASSET_ROUTE))
    n_jobs = max(1, len(finished))
    n_tasks = args.jobs
    done = store["counts"].get("done", 0)
    statements: Counter[str] = Counter()
    for report in reports:
        statements.update(report["by_verb"])
    n_statements = sum(statements.values())
    makespan = store["makespan_s"] or 0.0
    result = {
        "runners": count,
        "tasks_done": done,
        "counts": store["counts"],
        "backend_jobs": len(records),
        "finished_jobs": len(finished),
        "ledger_jobs": store["ledger_jobs"],
        "jobs_per_backend": {n: len(rows) for n, rows in by_backend.items()},
        "job_seconds_total": round(sum(run_times), 3),
        "job_seconds_min": round(min(run_times, default=0.0), 3),
        "job_seconds_max": round(max(run_times, default=0.0), 3),
        "lower_bound_s": round(lower, 3),
        "makespan_s": round(makespan, 3),
        "makespan_over_bound": round(makespan / lower, 4) if lower else None,
        "lower_bound_with_queue_s": round(lower_queued, 3),
        "makespan_over_bound_with_queue": round(makespan / lower_queued, 4) if lower_queued else None,
        "wall_s": round(wall, 3),
        "peak_jobs": store["peak_jobs"],
        "phases_s": phases(store["jobs"], by_backend, slots, makespan),
        "requests": total,
        "requests_per_job": round(total / n_jobs, 3),
        "asset_requests": assets,
        "requests_per_job_without_assets": round((total - assets) / n_jobs, 3),
        "requests_by_route": dict(per_route.most_common()),
        "requests_per_job_by_route": {r: round(n / n_jobs, 4) for r, n in per_route.most_common()},
        "statements": n_statements,
        "statements_per_task": round(n_statements / n_tasks, 3),
        "statements_by_verb": dict(statements.most_common()),
        "transactions_per_task": round(sum(r["transactions"] for r in reports) / n_tasks, 3),
        "pings_per_task": round(sum(r["pings"] for r in reports) / n_tasks, 3),
        "statements_with_pings_per_task": round(
            (n_statements + sum(r["pings"] for r in reports)) / n_tasks, 3),
        "server": server,
        "server_xacts_per_task": round((server["xact_commit"] + server["xact_rollback"]) / n_tasks, 3),
        "server_tuples_written_per_task": round(
            (server["tup_inserted"] + server["tup_updated"] + server["tup_deleted"]) / n_tasks, 3),
        "cpu_run_s": round(sum(r["cpu_run_s"] for r in reports), 3),
        "cpu_run_ms_per_job": round(1000 * sum(r["cpu_run_s"] for r in reports) / n_jobs, 3),
        "cpu_total_s": round(cpu_children, 3),
        "cpu_total_ms_per_job": round(1000 * cpu_children / n_jobs, 3),
        "peak_rss_mb": [round(r["peak_rss_mb"] or 0.0, 1) for r in reports],
        "events": store["events"],
        "events_by_actor": store["events_by_actor"],
        "work_by_runner": store["work_by_runner"],
        "runner_processes": [{k: r[k] for k in ("pid", "code", "wall_s", "cpu_run_s", "cpu_total_s",
                                                "statements", "transactions", "pings", "events")}
                             for r in reports],
    }
    if len(finished) != args.jobs or done != args.jobs:
        print(f"  warning: {count} runner(s): {len(finished)} jobs finished on the backends, "
              f"{done} tasks done, {len(records)} jobs created", flush=True)
    over = {b: p for b, p in store["peak_jobs"].items() if p > BACKENDS[b]}
    if over:
        print(f"  warning: {count} runner(s): more jobs at once than parallel_jobs: {over}", flush=True)
    return result


# ----- the report ---------------------------------------------------------------------------

FIELDS = ("makespan_s", "lower_bound_s", "makespan_over_bound", "lower_bound_with_queue_s",
          "makespan_over_bound_with_queue", "wall_s", "requests_per_job",
          "requests_per_job_without_assets", "statements_per_task", "transactions_per_task",
          "pings_per_task", "statements_with_pings_per_task", "server_xacts_per_task",
          "server_tuples_written_per_task", "cpu_run_ms_per_job", "cpu_total_ms_per_job", "tasks_done",
          "finished_jobs")
RATIOS = ("makespan_s", "requests_per_job", "requests_per_job_without_assets", "statements_per_task",
          "statements_with_pings_per_task", "transactions_per_task", "server_xacts_per_task",
          "cpu_run_ms_per_job", "cpu_total_ms_per_job")


def medians(runs: list[dict[str, Any]], count: int) -> dict[str, Any]:
    mine = [r for r in runs if r["runners"] == count]
    found: dict[str, Any] = {f: round(statistics.median(r[f] for r in mine), 4) for f in FIELDS}
    routes = sorted({route for r in mine for route in r["requests_per_job_by_route"]})
    found["requests_per_job_by_route"] = {
        route: round(statistics.median(r["requests_per_job_by_route"].get(route, 0.0) for r in mine), 4)
        for route in routes}
    found["phases_s_median"] = {
        name: round(statistics.median(r["phases_s"][name]["median"] for r in mine), 3)
        for name in mine[0]["phases_s"] if isinstance(mine[0]["phases_s"][name], dict)}
    found["slots_held_share"] = round(
        statistics.median(r["phases_s"]["slots_held_share"] or 0 for r in mine), 4)
    found["peak_jobs_max"] = {b: max(r["peak_jobs"].get(b, 0) for r in mine) for b in BACKENDS}
    return found


def run_line(result: dict[str, Any], n: int, runs: int) -> str:
    peaks = "/".join(str(result["peak_jobs"].get(b, 0)) for b in BACKENDS)
    line = (f"run {n}/{runs}, {result['runners']} runner(s): makespan {result['makespan_s']:.1f} s, "
            f"bound {result['lower_bound_s']:.1f} s (x{result['makespan_over_bound']:.3f}; with the "
            f"backend's queue x{result['makespan_over_bound_with_queue']:.3f}), "
            f"{result['requests_per_job']:.2f} req/job, {result['statements_per_task']:.1f} stmts/task, "
            f"cpu {result['cpu_run_ms_per_job']:.1f} ms/job, peak jobs {peaks}")
    spans = result["phases_s"]
    line += "\n  per job (median/p95 s): " + ", ".join(
        f"{name.replace('_', ' ')} {v['median']:.2f}/{v['p95']:.2f}"
        for name, v in spans.items() if isinstance(v, dict))
    line += f"; slots held {spans['slots_held_share']}"
    if result["runners"] > 1:
        line += "\n  work: " + "; ".join(
            f"runner {rid}: {w['jobs_launched']} launched, "
            + (", ".join(f"{role} events {k}" for role, k in sorted(w["events"].items())) or "no events")
            for rid, w in result["work_by_runner"].items())
    return line


def shown(value: float | None, width: int) -> str:
    return f"{value:>{width}.3f}" if value is not None else f"{'-':>{width}}"


def print_table(median: dict[int, dict[str, Any]], ratio: dict[str, float | None],
                args: argparse.Namespace) -> None:
    print(f"\n{args.jobs} jobs, backends {BACKENDS} (parallel_jobs), {args.runs} run(s), medians")
    header = (f"{'runners':>7} | {'makespan':>8} | {'bound':>6} | {'ratio':>6} | {'w/ queue':>8} | "
              f"{'req/job':>7} | "
              f"{'w/o assets':>10} | {'stmts/task':>10} | {'w/ pings':>8} | {'xacts/task':>10} | "
              f"{'cpu ms/job':>10} | "
              f"{'w/ imports':>10} | {'peak jobs':>9}")
    print(header)
    print("-" * len(header))
    for count, m in median.items():
        peaks = "/".join(str(m["peak_jobs_max"][b]) for b in BACKENDS)
        print(f"{count:>7} | {m['makespan_s']:>8.1f} | {m['lower_bound_s']:>6.1f} | "
              f"{m['makespan_over_bound']:>6.3f} | {m['makespan_over_bound_with_queue']:>8.3f} | "
              f"{m['requests_per_job']:>7.2f} | "
              f"{m['requests_per_job_without_assets']:>10.2f} | {m['statements_per_task']:>10.1f} | "
              f"{m['statements_with_pings_per_task']:>8.1f} | "
              f"{m['transactions_per_task']:>10.2f} | {m['cpu_run_ms_per_job']:>10.1f} | "
              f"{m['cpu_total_ms_per_job']:>10.1f} | {peaks:>9}")
    columns = [shown(ratio[f], w) for f, w in (
        ("makespan_s", 8), ("requests_per_job", 7), ("requests_per_job_without_assets", 10),
        ("statements_per_task", 10), ("statements_with_pings_per_task", 8), ("transactions_per_task", 10),
        ("cpu_run_ms_per_job", 10), ("cpu_total_ms_per_job", 10))]
    print(f"{'3 / 1':>7} | {columns[0]} | {'':>6} | {'':>6} | {'':>8} | " + " | ".join(columns[1:])
          + f" | {'':>9}")
    routes = sorted({r for m in median.values() for r in m["requests_per_job_by_route"]})
    print(f"\nrequests per job by route: {' | '.join(f'{c} runner(s)' for c in median)}")
    for route in routes:
        print(f"  {route:<40} " + " | ".join(
            f"{m['requests_per_job_by_route'].get(route, 0.0):>12.3f}" for m in median.values()))


def environment(admin: Any) -> dict[str, Any]:
    import openeo
    import psycopg
    import sqlalchemy

    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "openeo": openeo.client_version(), "sqlalchemy": sqlalchemy.__version__,
            "psycopg": psycopg.__version__,
            "postgresql": admin.execute("SHOW server_version").fetchone()[0],
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=1000, help="tiles, one job each (1000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of both configurations (3)")
    parser.add_argument("--time-scale", type=float, default=0.1,
                        help="wall seconds per simulated second; jobs take 60 simulated s "
                             "+- jitter (0.1: 6 s)")
    parser.add_argument("--jitter", type=float, default=0.2,
                        help="relative spread of job run times (0.2: 4.8-7.2 s at the default scale)")
    parser.add_argument("--min-interval", type=float, default=0.1, help="[polling] min_interval (0.1)")
    parser.add_argument("--max-interval", type=float, default=5.0, help="[polling] max_interval (5)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per configuration run (1800)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON file ({RESULTS})")
    parser.add_argument("--runner", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runner:
        return runner(args.runner)

    from openeo_upscale.campaign import Leasing

    admin, pg_user = admin_connection()
    counters = count_requests()
    runs: list[dict[str, Any]] = []
    with admin, tempfile.TemporaryDirectory(prefix="bench-runners-") as tmp_root:
        tiles_path = Path(tmp_root) / "tiles.parquet"
        workload_tiles(args.jobs).to_parquet(tiles_path)
        for n in range(args.runs):
            order = list(CONFIGURATIONS) if n % 2 == 0 else list(reversed(CONFIGURATIONS))
            tmp = Path(tmp_root) / f"run{n + 1}"
            tmp.mkdir()
            for count in order:
                result = measure(count, args, tiles_path, counters, admin, pg_user, tmp)
                result["run"] = n + 1
                runs.append(result)
                print(run_line(result, n + 1, args.runs), flush=True)
        env = environment(admin)

    median = {count: medians(runs, count) for count in CONFIGURATIONS}
    one, three = median[1], median[3]
    ratio: dict[str, float | None] = {f: round(three[f] / one[f], 4) if one[f] else None for f in RATIOS}
    print_table(median, ratio, args)
    goals = {
        "makespan_within_1.05_bound_1_runner": one["makespan_over_bound"] <= 1.05,
        "makespan_within_1.05_bound_3_runners": three["makespan_over_bound"] <= 1.05,
        "makespan_within_1.05_bound_with_queue_1_runner": one["makespan_over_bound_with_queue"] <= 1.05,
        "makespan_within_1.05_bound_with_queue_3_runners": three["makespan_over_bound_with_queue"] <= 1.05,
        "requests_per_job_3_over_1_at_most_1.2": (ratio["requests_per_job"] or 0) <= 1.2,
        "peak_jobs_within_parallel_jobs": all(r["peak_jobs"].get(b, 0) <= p
                                              for r in runs for b, p in BACKENDS.items()),
    }
    print(f"\ngoals: {goals}")
    report = {
        "benchmark": "runners",
        "settings": {"jobs": args.jobs, "runs": args.runs, "configurations_runners": CONFIGURATIONS,
                     "store": "postgresql (a new database per configuration and run)",
                     "backends_parallel_jobs": BACKENDS, "run_slots_per_backend": RUN_SLOTS,
                     "time_scale": args.time_scale, "jitter": args.jitter, "base_seconds": 60.0,
                     "job_wall_seconds_range": [round(60 * args.time_scale * (1 - args.jitter), 3),
                                                round(60 * args.time_scale * (1 + args.jitter), 3)],
                     "polling": {"min_interval": args.min_interval, "max_interval": args.max_interval},
                     "lease_seconds": Leasing().lease_seconds,
                     "udp": "max_ndvi (shared/udp, namespace " + MAX_NDVI_URL + ")"},
        "median": {str(count): m for count, m in median.items()},
        "ratio_3_over_1": ratio,
        "goals": goals,
        "runs": runs,
        "environment": env,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
