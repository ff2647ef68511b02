"""`openeo-upscale pilot`, and `run`'s guard against a forecast over the budget, end to end against
the local backend."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from openeo_upscale.backend import LocalBackend
from openeo_upscale.cli import main
from tests.helpers import PASSWORD_ENV, USER_ENV, campaign_toml, local_backend_jobs

BIG_BBOX = [4.30, 51.00, 4.60, 51.20]
"""About 20 tiles of 5 km."""


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_ENV, "demo")
    monkeypatch.setenv(PASSWORD_ENV, "demo")


def _toml(tmp_path: Path, backend: LocalBackend, udp_dir: Path, limits: str = "") -> Path:
    return campaign_toml(tmp_path, backend.url, udp_dir, name="guarded", bbox=BIG_BBOX, tables=limits)


def _status(store: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["status", str(store), "--json"]) == 0
    found: dict[str, Any] = json.loads(capsys.readouterr().out)
    return found


def test_a_forecast_over_the_budget_launches_nothing_beyond_the_pilot(
    tmp_path: Path, backend: LocalBackend, udp_dir: Path, credentials: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    toml = _toml(tmp_path, backend, udp_dir)
    assert main(["pilot", str(toml), "--tiles", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "pilot: 3 tile(s), 3 to run" in out
    assert re.search(r"forecast from the pilot \(3 measured\): [\d.,]+ credits \(90 %: ", out), out
    assert "left for" in out and "slot(s)" in out and "of results" in out
    store = tmp_path / "campaign.sqlite"
    status = _status(store, capsys)
    tasks, forecast = status["tasks"], status["forecast"]
    assert status["counts"]["done"] == 3 and tasks > 10
    assert forecast["basis"] == "pilot" and forecast["measured"] == 3 and forecast["remaining"] == tasks - 3
    assert forecast["credits"]["low"] <= forecast["credits"]["median"] <= forecast["credits"]["high"]
    assert forecast["credits"]["median"] > status["credits"] * (tasks / 3) * 0.5
    assert len(local_backend_jobs(backend)) == 3

    # A budget of half the forecast: nothing beyond the pilot, and both figures said.
    budget = round(forecast["credits"]["median"] / 2, 2)
    toml = _toml(tmp_path, backend, udp_dir, limits=f"[limits]\nmax_credits = {budget}")
    capsys.readouterr()
    assert main(["run", str(toml), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"the forecast is {forecast['credits']['median']:,.2f} credits" in err, err
    assert f"over max_credits {budget:,.2f}" in err and "--accept-forecast" in err
    assert len(local_backend_jobs(backend)) == 3
    # --dry-run says so too, and writes nothing.
    assert main(["run", str(toml), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"OVER max_credits {budget:,.2f}" in out

    # Accepted: the campaign runs, until the budget itself is spent.
    assert main(["run", str(toml), "--quiet", "--accept-forecast"]) == 1
    captured = capsys.readouterr()
    assert "credit budget" in captured.err or "max_credits" in captured.err, captured.err
    jobs = local_backend_jobs(backend)
    assert len(jobs) > 3
    status = _status(store, capsys)
    assert status["counts"]["done"] > 3
    spent_per_job = status["credits"] / status["jobs"]
    assert status["credits"] <= budget + spent_per_job  # never more than one job's worth over
    assert status["forecast"]["basis"] == "running" and status["tracking"]["done"] == status["counts"]["done"]


def test_pilot_refuses_a_tile_count_below_one(
    tmp_path: Path, backend: LocalBackend, udp_dir: Path, credentials: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    toml = _toml(tmp_path, backend, udp_dir)
    assert main(["pilot", str(toml), "--tiles", "0"]) == 2
    assert "--tiles must be at least 1, not 0" in capsys.readouterr().err
    assert not (tmp_path / "campaign.sqlite").exists()
