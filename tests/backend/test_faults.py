"""Seeded fault injection of the local backend: reproducible 5xx, 429 with Retry-After,
dropped connections, slow answers, failing and stuck jobs, and the `[faults]` TOML table."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import openeo
import pytest
import requests

from openeo_upscale.backend import (
    BackendConfig,
    Faults,
    JobFailureRule,
    LocalBackend,
    RateLimit,
    Simulation,
    load_config,
)
from openeo_upscale.backend.faults import FaultPlan, route_key
from openeo_upscale.errors import ConfigError
from tests.conftest import FAST, MAX_NDVI_URL
from tests.helpers import wait_until

PREFIX = "/openeo/1.2"
SMALL_BBOX = {"west": 4.40, "south": 51.20, "east": 4.42, "north": 51.22}
TERMINAL = {"finished", "error", "canceled"}


# ----- helpers ------------------------------------------------------------------------------


def make_config(state_dir: Path, udp_dir: Path, faults: Faults, **changes: Any) -> BackendConfig:
    return BackendConfig(state_dir=state_dir, udp_dirs=(udp_dir,), simulation=FAST, faults=faults,
                         **changes)


@pytest.fixture
def start_backend(tmp_path: Path, udp_dir: Path) -> Iterator[Callable[..., LocalBackend]]:
    """Start fresh backends with given faults (each with its own state); stopped at teardown."""
    with ExitStack() as stack:
        count = 0

        def start(faults: Faults, **changes: Any) -> LocalBackend:
            nonlocal count
            count += 1
            config = make_config(tmp_path / f"backend-{count}", udp_dir, faults, **changes)
            return stack.enter_context(LocalBackend(config))

        yield start


def bearer(backend: LocalBackend) -> dict[str, str]:
    """An Authorization header for the demo user, from a basic login over HTTP."""
    resp = requests.get(backend.api_url + "/credentials/basic", auth=("demo", "demo"), timeout=10)
    resp.raise_for_status()
    return {"Authorization": f"Bearer basic//{resp.json()['access_token']}"}


def max_ndvi_graph(bbox: dict[str, float] = SMALL_BBOX) -> dict[str, Any]:
    return {"maxndvi1": {
        "process_id": "max_ndvi", "namespace": MAX_NDVI_URL, "result": True,
        "arguments": {"bbox": bbox, "temporal_extent": ["2023-05-01", "2023-07-01"]},
    }}


def statuses_of(session: requests.Session, url: str, n: int) -> list[int]:
    return [session.get(url, timeout=10).status_code for _ in range(n)]


def assert_openeo_error(resp: requests.Response, code: str) -> None:
    body = resp.json()
    assert body["code"] == code
    assert isinstance(body["id"], str) and body["id"]
    assert isinstance(body["message"], str) and body["message"]


# ----- route keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/openeo/1.2/jobs", "GET /jobs"),
    ("POST", "/openeo/1.2/jobs/", "POST /jobs"),
    ("get", "/openeo/1.2/jobs/j-0123abc", "GET /jobs/{job_id}"),
    ("DELETE", "/openeo/1.2/jobs/j-1/results", "DELETE /jobs/{job_id}/results"),
    ("POST", "/openeo/1.2//jobs//j-1/results", "POST /jobs/{job_id}/results"),
    ("GET", "/openeo/1.2/jobs/j-1/logs", "GET /jobs/{job_id}/logs"),
    ("GET", "/openeo/1.2/jobs/j-1/estimate", "GET /jobs/{job_id}/estimate"),
    ("GET", "/openeo/1.2/jobs/j-1/results/assets/sub/openEO.tif",
     "GET /jobs/{job_id}/results/assets/{name}"),
    ("PUT", "/openeo/1.2/process_graphs/my_udp", "PUT /process_graphs/{process_graph_id}"),
    ("GET", "/openeo/1.2/collections/SENTINEL2_L2A", "GET /collections/{collection_id}"),
    ("GET", "/openeo/1.2/collections", "GET /collections"),
    ("GET", "/openeo/1.2/", "GET /"),
    ("GET", "/openeo/1.2", "GET /"),
    ("GET", "/openeo/1.2/udp/max_ndvi.json", "GET /udp/max_ndvi.json"),
])
def test_route_key(method: str, path: str, expected: str) -> None:
    assert route_key(method, path, PREFIX) == expected


# ----- (a) the same seed gives the same faults ---------------------------------------------


def test_fault_plan_is_a_function_of_seed_route_and_count() -> None:
    faults = Faults(seed=42, http_error_rate={"*": 0.2})
    route = "GET /collections"
    plan_a, plan_b = FaultPlan(faults), FaultPlan(faults)
    seq_a = [plan_a.server_error(route) for _ in range(200)]
    # Interleaving draws on another route does not shift this route's sequence.
    seq_b = []
    for _ in range(200):
        plan_b.server_error("GET /processes")
        seq_b.append(plan_b.server_error(route))
    assert seq_a == seq_b
    assert 20 <= sum(seq_a) <= 60  # about 20% of 200
    other = FaultPlan(Faults(seed=43, http_error_rate={"*": 0.2}))
    assert [other.server_error(route) for _ in range(200)] != seq_a
    # A route-specific rate wins over "*"; a rate of 0 never fires, 1 always does.
    mixed = FaultPlan(Faults(seed=42, http_error_rate={"*": 1.0, "GET /collections": 0.0}))
    assert not any(mixed.server_error(route) for _ in range(50))
    assert all(mixed.server_error("GET /processes") for _ in range(50))


def test_same_seed_gives_same_http_faults(
        start_backend: Callable[..., LocalBackend]) -> None:
    n = 200
    faults = Faults(seed=42, http_error_rate={"*": 0.2})
    runs = []
    for backend in (start_backend(faults), start_backend(faults)):
        with requests.Session() as session:
            runs.append(statuses_of(session, backend.api_url + "/collections", n))
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}
    assert 20 <= runs[0].count(503) <= 60
    # The HTTP sequence is exactly what the plan decides for that route.
    plan = FaultPlan(faults)
    assert runs[0] == [503 if plan.server_error("GET /collections") else 200 for _ in range(n)]

    other = start_backend(Faults(seed=43, http_error_rate={"*": 0.2}))
    with requests.Session() as session:
        assert statuses_of(session, other.api_url + "/collections", n) != runs[0]
        resp = next(r for r in (session.get(other.api_url + "/collections", timeout=10)
                                for _ in range(100)) if r.status_code == 503)
    assert_openeo_error(resp, "ServiceUnavailable")


# ----- (b) 429 with Retry-After -------------------------------------------------------------


def test_token_bucket_with_fake_clock() -> None:
    now = [1000.0]
    plan = FaultPlan(Faults(rate_limit=RateLimit(capacity=5, per_second=1)), clock=lambda: now[0])
    assert [plan.retry_after("a") for _ in range(5)] == [None] * 5
    assert plan.retry_after("a") == 1
    assert plan.retry_after("b") is None  # callers have their own buckets
    now[0] += 0.5
    assert plan.retry_after("a") == 1  # half a token: still wait (rounded up to whole seconds)
    now[0] += 0.5
    assert plan.retry_after("a") is None
    assert plan.retry_after("a") == 1
    slow = FaultPlan(Faults(rate_limit=RateLimit(capacity=1, per_second=0.25)), clock=lambda: now[0])
    assert slow.retry_after("a") is None
    assert slow.retry_after("a") == 4


def test_rate_limit_answers_429_with_retry_after(
        start_backend: Callable[..., LocalBackend]) -> None:
    backend = start_backend(Faults(rate_limit=RateLimit(capacity=5, per_second=1)))
    auth = bearer(backend)
    url = backend.api_url + "/me"
    with requests.Session() as session:
        burst = [session.get(url, headers=auth, timeout=10) for _ in range(20)]
        codes = [r.status_code for r in burst]
        assert codes[:5] == [200] * 5, codes
        limited = [r for r in burst if r.status_code == 429]
        assert len(limited) >= 10, codes
        for resp in limited:
            retry_after = resp.headers["Retry-After"]
            assert retry_after.isdigit() and int(retry_after) >= 1
            assert_openeo_error(resp, "TooManyRequests")

        # Honour Retry-After, then the caller is served again.
        wait = int(limited[-1].headers["Retry-After"])
        waited_from = time.monotonic()
        deadline = waited_from + wait + 2.0
        while True:
            resp = session.get(url, headers=auth, timeout=10)
            if resp.status_code == 200:
                break
            assert resp.status_code == 429
            assert int(resp.headers["Retry-After"]) >= 1
            assert time.monotonic() < deadline, "still limited well after Retry-After"
            time.sleep(0.1)
        assert resp.json()["user_id"] == "demo"
        assert time.monotonic() - waited_from <= wait + 2.0


# ----- (c) dropped connections ----------------------------------------------------------------


def test_dropped_connection_is_a_connection_error(
        start_backend: Callable[..., LocalBackend]) -> None:
    backend = start_backend(Faults(drop_rate={"GET /jobs": 1.0}))
    auth = bearer(backend)
    for _ in range(3):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(backend.api_url + "/jobs", headers=auth, timeout=10)
    # Other routes of the same backend are untouched, and it keeps serving after the drops.
    created = requests.post(backend.api_url + "/jobs", headers=auth, timeout=10,
                            json={"process": {"process_graph": max_ndvi_graph()}})
    assert created.status_code == 201
    job_id = created.headers["OpenEO-Identifier"]
    got = requests.get(f"{backend.api_url}/jobs/{job_id}", headers=auth, timeout=10)
    assert got.status_code == 200 and got.json()["status"] == "created"
    # The official client sees the same thing (its own retries, with back-off, turned off).
    con = openeo.connect(backend.url, retry=False).authenticate_basic("demo", "demo")
    with pytest.raises(requests.exceptions.ConnectionError):
        con.list_jobs()


# ----- (d) slow answers -----------------------------------------------------------------------


def test_slow_responses_take_slow_seconds(start_backend: Callable[..., LocalBackend]) -> None:
    backend = start_backend(Faults(slow_rate={"GET /collections": 1.0}, slow_seconds=0.3))
    with requests.Session() as session:
        for _ in range(2):
            started = time.monotonic()
            resp = session.get(backend.api_url + "/collections", timeout=10)
            elapsed = time.monotonic() - started
            assert resp.status_code == 200 and resp.json()["collections"]
            assert elapsed >= 0.3


# ----- (e) job failures keyed on title and attempt --------------------------------------------


def _run_to_end(con: openeo.Connection, jobs: dict[str, openeo.BatchJob]) -> dict[str, str]:
    for job in jobs.values():
        job.start()
    wait_until(lambda: all(j.status() in TERMINAL for j in jobs.values()), "all jobs to end", interval=0.1)
    return {title: job.status() for title, job in jobs.items()}


def test_job_failures_are_seeded_by_title_and_attempt(
        start_backend: Callable[..., LocalBackend]) -> None:
    faults = Faults(seed=7, job_failure_rate=0.5)
    titles = [f"tile-{i}" for i in range(8)]
    outcomes: list[tuple[dict[str, str], dict[str, str]]] = []
    for backend in (start_backend(faults, run_slots=8), start_backend(faults, run_slots=8)):
        con = openeo.connect(backend.url).authenticate_basic("demo", "demo")
        jobs = {t: con.create_job(max_ndvi_graph(), title=t, validate=False) for t in titles}
        first = _run_to_end(con, jobs)
        failed = {t: j for t, j in jobs.items() if first[t] == "error"}
        for job in failed.values():
            messages = [entry["message"] for entry in job.logs(level="error")]
            assert any("Injected failure (attempt 1)" in m for m in messages), messages
        # Restarting a failed job is its second attempt: a fresh, seeded draw.
        second = _run_to_end(con, failed)
        outcomes.append((first, second))

    (first_a, second_a), (first_b, second_b) = outcomes
    # Different job ids on the two backends, same titles: the same jobs fail, the same recover.
    assert first_a == first_b
    assert second_a == second_b
    assert set(first_a.values()) == {"finished", "error"}, first_a
    assert "finished" in second_a.values(), "no failed title succeeded on its second attempt"


# ----- (f) stuck jobs -------------------------------------------------------------------------


def test_stuck_job_stays_queued_while_slots_are_free(
        start_backend: Callable[..., LocalBackend]) -> None:
    sim = FAST
    backend = start_backend(Faults(seed=1, stuck_rate=1.0, stuck_seconds=3600))
    con = openeo.connect(backend.url).authenticate_basic("demo", "demo")
    job = con.create_job(max_ndvi_graph(), title="stuck", validate=False)
    job.start()
    # An unstuck job of this size is queued for ~0.01 s and done in under a second.
    normal_life = (sim.queue_seconds + 200.0) * sim.time_scale
    deadline = time.monotonic() + normal_life
    while time.monotonic() < deadline:
        assert job.status() == "queued"
        time.sleep(0.1)
    limits = con.describe_account()["limits"]
    assert limits["running_jobs"]["remaining"] == limits["running_jobs"]["max"] >= 1
    assert any("Waiting for resources" in e["message"] for e in job.logs())
    # Cancelling releases it as usual.
    job.stop()
    assert job.status() == "canceled"


# ----- (g) the [faults] TOML table ------------------------------------------------------------

FAULTS_TOML = """
[backend]
run_slots = 3

[backend.simulation]
time_scale = 0.01

[backend.faults]
seed = 99
http_error_rate = { "*" = 0.1, "POST /jobs" = 0.3 }
drop_rate = { "GET /jobs/{job_id}" = 0.05 }
slow_rate = { "GET /collections" = 0.5 }
slow_seconds = 1.5
job_failure_rate = 0.25
stuck_rate = 0.1
stuck_seconds = 600.0

[backend.faults.rate_limit]
capacity = 7
per_second = 2.5

[[backend.faults.job_failures]]
match = "tile-3"
attempts = [1, 2]
message = "Out of memory"

[[backend.faults.job_failures]]
match = "SENTINEL1"
"""


def test_load_config_reads_faults_table(tmp_path: Path) -> None:
    path = tmp_path / "backend.toml"
    path.write_text(FAULTS_TOML)
    config = load_config(path)
    assert config.run_slots == 3
    assert config.simulation == Simulation(time_scale=0.01)
    assert config.faults == Faults(
        seed=99,
        http_error_rate={"*": 0.1, "POST /jobs": 0.3},
        drop_rate={"GET /jobs/{job_id}": 0.05},
        slow_rate={"GET /collections": 0.5},
        slow_seconds=1.5,
        rate_limit=RateLimit(capacity=7, per_second=2.5),
        job_failure_rate=0.25,
        job_failures=(
            JobFailureRule("tile-3", attempts=(1, 2), message="Out of memory"),
            JobFailureRule("SENTINEL1"),
        ),
        stuck_rate=0.1,
        stuck_seconds=600.0,
    )
    assert isinstance(config.faults.rate_limit, RateLimit)
    assert all(isinstance(r, JobFailureRule) for r in config.faults.job_failures)
    assert config.faults.enabled
    # Without the [backend] wrapper the same tables are read at the top level.
    path.write_text(FAULTS_TOML.replace("[backend.", "[").replace("[[backend.", "[[")
                    .replace("[backend]\n", ""))
    assert load_config(path) == config


@pytest.mark.parametrize(("toml", "name"), [
    ("[faults]\nseed = 1\ndrop_rates = { \"*\" = 0.1 }\n", "drop_rates"),
    ("[faults.rate_limit]\ncapacity = 3\nburst = 9\n", "burst"),
    ("[[faults.job_failures]]\nmatch = \"x\"\nattempt = [2]\n", "attempt"),
    ("[simulation]\ntimescale = 0.1\n", "timescale"),
    ("run_slot = 3\n", "run_slot"),
])
def test_load_config_refuses_unknown_keys(tmp_path: Path, toml: str, name: str) -> None:
    path = tmp_path / "backend.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=name):
        load_config(path)
