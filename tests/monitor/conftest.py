"""Monitor test fixtures: headless Chromium (see tests/monitor/browser.py), and a store on SQLite and
PostgreSQL whose clock moves only when told."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openeo_upscale.campaign import Store
from tests.campaign.conftest import postgres_database, postgres_url  # noqa: F401 - fixtures
from tests.monitor.browser import chromium  # noqa: F401 - a fixture, used by name
from tests.monitor.builders import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Store]:
    """An open, empty store on each backend, on the test's `clock`."""
    sqlite = str(tmp_path / "store.sqlite")
    target = sqlite if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with Store.open(target, clock=clock) as opened:
        yield opened
