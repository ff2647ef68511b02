"""Store fixtures (a SQLite file in tmp_path, PostgreSQL at 127.0.0.1 in a throwaway database) and a
factory of quick local backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from openeo_upscale.backend import BackendConfig, LocalBackend, Simulation
from openeo_upscale.campaign import Campaign, Store
from tests.conftest import IN_CI, scratch_udps

QUICK = Simulation(time_scale=0.002, queue_seconds=1.0)
"""About a third of a second per 5 km job."""
BRISK = Simulation(time_scale=0.0005, queue_seconds=1.0)
"""About a tenth of a second per 5 km job, for the 200-task runs: they are paced by the scheduler's
requests and polls, which is what they test, rather than by waiting for jobs."""

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USERS = ("postgres", "root")
PG_ADMIN_DATABASE = "test"


def _admin_connection() -> tuple[psycopg.Connection[tuple[object, ...]], str]:
    """An autocommit connection to the admin database, and the user it worked for."""
    problems: list[str] = []
    for user in PG_USERS:
        try:
            conn = psycopg.connect(host=PG_HOST, port=PG_PORT, user=user, dbname=PG_ADMIN_DATABASE,
                                   connect_timeout=3, autocommit=True)
        except psycopg.OperationalError as exc:
            problems.append(f"{user}: {str(exc).strip()}")
        else:
            return conn, user
    message = f"PostgreSQL at {PG_HOST}:{PG_PORT} not reachable: {'; '.join(problems)}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database created for this test session and dropped afterwards; yields its URL."""
    admin, user = _admin_connection()
    name = f"upscale_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A fresh schema in the session's database per test (cheaper than a database per test)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            # libpq's `options` puts the schema first on every connection's search path.
            yield f"{postgres_database}?options=-csearch_path%3D{schema}"
        finally:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives: a SQLite file path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "campaign.sqlite")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    """An open, empty store on each backend."""
    with Store.open(store_target) as opened:
        yield opened


@pytest.fixture
def backends(tmp_path: Path, udp_dir: Path) -> Iterator[Any]:
    """A factory of local backends (quick simulated jobs, 4 run slots unless told) that all stop at
    the end of the test."""
    with ExitStack() as stack:

        def start(name: str, **settings: Any) -> LocalBackend:
            settings.setdefault("simulation", QUICK)
            settings.setdefault("run_slots", 4)
            settings.setdefault("state_dir", tmp_path / f"backend-{name}")
            config = BackendConfig(udp_dirs=(udp_dir, scratch_udps(tmp_path)), **settings)
            return stack.enter_context(LocalBackend(config))

        yield start


@pytest.fixture
def stop_campaigns(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A failing test must not leave a campaign thread polling backends that are shutting down."""
    started: list[Campaign] = []
    real_start = Campaign.start

    def start(self: Campaign, **kwargs: Any) -> None:
        started.append(self)
        real_start(self, **kwargs)

    monkeypatch.setattr(Campaign, "start", start)
    yield
    for campaign in started:
        campaign.stop()
