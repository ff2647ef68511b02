"""The forecast where people look: the dashboard (in headless Chromium), the report, the run panel
and ``status``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from openeo_upscale.campaign import Campaign, Forecast, Store
from openeo_upscale.campaign.forecast import of_campaign
from openeo_upscale.cli import main
from openeo_upscale.monitor.dashboard import create_app
from openeo_upscale.monitor.report import write_report
from openeo_upscale.monitor.terminal import Progress, render
from tests.helpers import wait_until
from tests.monitor.browser import screenshot
from tests.monitor.builders import build_campaign, serving

BUDGET = 1.0
"""Below what the built campaign's forecast comes to: every view says it is over."""


@pytest.fixture
def forecast_store(tmp_path: Path) -> Iterator[tuple[Path, int, Forecast]]:
    """`build_campaign`'s store with a pilot forecast made from its done tasks, and a budget."""
    store, campaign_id = build_campaign(tmp_path)
    with store:
        found, _ = of_campaign(store, campaign_id, slots=[2, 2], basis="pilot")
        assert found is not None and found.credits.median > BUDGET
        store.record_forecast(campaign_id, "pilot", found.to_dict())
        config = store.campaign(campaign_id)["config"]
        store.set_campaign_config(campaign_id, {**config, "limits": {"max_credits": BUDGET}})
    yield tmp_path / "store.db", campaign_id, found


def test_the_report_shows_the_forecast_against_the_budget(forecast_store: tuple[Path, int, Forecast],
                                                          tmp_path: Path) -> None:
    path, campaign_id, found = forecast_store
    with Store.open(path) as store:
        page = write_report(store, campaign_id, tmp_path / "report.html").read_text()
    section = page.split('<section id="forecast">', 1)[1].split("</section>", 1)[0]
    assert f"{found.credits.median:,.2f} credits" in section
    assert f"90 %: {found.credits.low:,.2f} to {found.credits.high:,.2f}" in section
    assert f"OVER max_credits {BUDGET:,.2f}" in section
    assert "left for" in section and "of results" in section


def test_the_run_panel_and_status_show_the_forecast(forecast_store: tuple[Path, int, Forecast],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path, _, found = forecast_store
    with Campaign.open(path) as campaign:
        summary = campaign.summary()
    assert summary["forecast"]["credits"]["median"] == pytest.approx(found.credits.median)
    assert summary["forecast"]["max_credits"] == BUDGET
    console = Console(record=True, width=200)
    console.print(render(summary, Progress()))
    panel = console.export_text()
    assert f"forecast from the pilot ({found.measured} measured): {found.credits.median:,.2f} credits" \
        in panel
    assert main(["status", str(path)]) == 0
    assert f"OVER max_credits {BUDGET:,.2f}" in capsys.readouterr().out
    assert main(["status", str(path), "--json"]) == 0
    printed: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert printed["forecast"]["remaining"] == found.remaining


def test_the_dashboard_shows_the_forecast(chromium: object,
                                          forecast_store: tuple[Path, int, Forecast]) -> None:
    path, _, found = forecast_store
    script = chromium.execute_script  # type: ignore[attr-defined]
    with serving(create_app(str(path))) as url:
        chromium.get(url + "/")  # type: ignore[attr-defined]
        wait_until(lambda: script("return document.getElementById('forecast').dataset.median"),
                   "the forecast panel", timeout=30)
        text = script("return document.getElementById('forecast').innerText")
        screenshot(chromium, "dashboard-forecast")
    assert f"{found.credits.median:,.2f} credits" in text, text
    assert "90 %:" in text and f"OVER max_credits {BUDGET:,.2f}" in text.replace("\u202f", " "), text
    assert f"left for {found.remaining} task(s) on 4 slot(s)" in text, text
