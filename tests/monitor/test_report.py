"""The HTML report: one self-contained file, plotly.js once, nothing external, every value escaped."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from plotly.offline import get_plotlyjs

from openeo_upscale.campaign import TaskState
from openeo_upscale.campaign.store import Store
from openeo_upscale.cli import main
from openeo_upscale.monitor import report
from openeo_upscale.monitor.report import GRAPH_IDS, write_report
from tests.monitor.builders import EVIL, MAP_T0, RETRIED, build_campaign, launch, run_job, square

NOW = MAP_T0 + timedelta(hours=2)


def _clock() -> datetime:
    return NOW


def _outside_bundle(page: str) -> str:
    """The page with the inlined plotly.js removed, after checking it is there exactly once."""
    bundle = get_plotlyjs()
    assert page.count(bundle) == 1
    assert page.count("plotly.js v") == 1  # the bundle's licence header: not inlined twice in parts
    return page.replace(bundle, "")


def _section(page: str, section_id: str) -> str:
    start = page.index(f'id="{section_id}"')
    return page[start:page.index("</section>", start)]


def _traces(page: str, div_id: str) -> list[dict[str, Any]]:
    """The traces of one plotly graph of the page, as plotly's script passes them to ``newPlot``."""
    start = page.index(f'Plotly.newPlot(                        "{div_id}",') + len("Plotly.newPlot(")
    decoder = json.JSONDecoder()
    _, end = decoder.raw_decode(page, start + page[start:].index('"'))
    traces, _ = decoder.raw_decode(page, end + page[end:].index("["))
    assert isinstance(traces, list)
    return traces


def _assert_self_contained(page: str) -> None:
    rest = _outside_bundle(page)
    assert "http://" not in rest and "https://" not in rest
    assert not re.search(r"<script[^>]*\ssrc\s*=", rest, re.I)
    assert not re.search(r"<(link|img|iframe|object|embed|source)\b", rest, re.I)
    assert not re.search(r"url\s*\(|@import", rest, re.I)
    assert "//cdn" not in rest.lower()


def test_report_sections_and_self_containment(tmp_path: Path) -> None:
    store, campaign_id = build_campaign(tmp_path)
    with store:
        path = write_report(store, campaign_id, tmp_path / "out" / "report.html", clock=_clock)
    page = path.read_text(encoding="utf-8")
    _assert_self_contained(page)
    for div_id in GRAPH_IDS:
        assert page.count(f'id="{div_id}"') == 1
    assert page.count("Plotly.newPlot(") == len(GRAPH_IDS)
    assert 'id="summary"' in page and 'id="failures"' in page and 'data-tasks="12"' in page
    assert 'id="retries"' in page
    assert "<title>Campaign demo</title>" in page
    summary = _section(page, "summary")
    assert re.search(r"done</td><td class=\"num\">3</td>", summary)
    assert re.search(r"failed</td><td class=\"num\">3</td>", summary)
    assert "2025-03-01 08:00:00 UTC to" in summary
    # 10 tasks launched, one of them twice; 9 of those jobs started
    for fact, value in [("credits", "20.75"), ("backend jobs", "11"), ("jobs started", "9"),
                        ("retried tasks", "1"), ("backends", "alpha, beta")]:
        assert f"<th>{fact}</th><td>{value}</td>" in summary
    failures = page[page.index('id="failures"'):]
    assert "out of memory on t006" in failures and "j-t006" in failures
    # the error "<script>alert(1)</script>" is shown as text, nowhere as markup
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in failures
    assert page.count("<script") == 1 + len(GRAPH_IDS)


def test_report_of_an_empty_campaign(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        campaign_id = store.create_campaign("empty", config={"uid": "u"}, tasks=[])
        page = write_report(store, campaign_id, tmp_path / "r.html", clock=_clock).read_text()
    _assert_self_contained(page)
    assert "no tasks" in page and "no job has started" in page and "No failed tasks." in page
    assert all(f'id="{div_id}"' in page for div_id in GRAPH_IDS)


def test_report_without_finished_tasks(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        rows = [{"tile_id": f"t{i}", "geometry": square(i, 0)} for i in range(3)]
        campaign_id = store.create_campaign("young", config={"uid": "u"}, tasks=rows)
        task = next(store.all_tasks(campaign_id))
        run_job(store, campaign_id, task.id, "b", 1, job_id="j1", end=TaskState.RUNNING, started=MAP_T0)
        page = write_report(store, campaign_id, tmp_path / "r.html", clock=_clock).read_text()
    _assert_self_contained(page)
    assert "no finished job yet" in page
    assert "running</td>" in page
    assert "(2h 00m 00s)" in page  # the running job's bar reaches "now"


def test_many_jobs_aggregate_the_timeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "TIMELINE_MAX_BARS", 3)
    store, campaign_id = build_campaign(tmp_path)
    with store:
        page = write_report(store, campaign_id, tmp_path / "r.html", clock=_clock).read_text()
    assert "jobs running per backend (9 jobs)" in page


def test_report_html_size_stays_close_to_the_bundle(tmp_path: Path) -> None:
    store, campaign_id = build_campaign(tmp_path, n=100)
    with store:
        path = write_report(store, campaign_id, tmp_path / "r.html", clock=_clock)
    extra = path.stat().st_size - len(get_plotlyjs().encode())
    assert 0 < extra < 500_000


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, _ = build_campaign(tmp_path)
    store.close()
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "store.db"), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    _assert_self_contained(out.read_text(encoding="utf-8"))
    assert main(["report", str(tmp_path / "store.db"), "-o", str(out), "--name", "nope"]) == 2
    assert "no campaign with name 'nope'" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.db"), "-o", str(out)]) == 2


def test_timeline_and_credits_show_every_job_of_the_ledger(tmp_path: Path) -> None:
    store, campaign_id = build_campaign(tmp_path)
    with store:
        page = write_report(store, campaign_id, tmp_path / "r.html", clock=_clock).read_text()
    bars = {trace["name"]: trace for trace in _traces(page, "timeline")}
    rows = {name: list(zip(*trace["y"], strict=True)) for name, trace in bars.items()}
    # the retried tile has two bars on two rows: its failed first job on alpha, its done one on beta
    assert ("alpha", RETRIED) in rows["failed"] and ("beta", RETRIED) in rows["done"]
    first = bars["failed"]["text"][rows["failed"].index(("alpha", RETRIED))]
    assert "attempt 1" in first and "job status: error" in first and "credits: 0.50" in first
    assert "lost the worker &amp; &lt;the&gt; node" in first
    assert sum(len(r) for r in rows.values()) == 9
    assert {name: len(r) for name, r in rows.items()} == {"running": 2, "done": 3, "failed": 4}
    credits = {trace["name"]: sorted(trace["x"]) for trace in _traces(page, "credits")}
    assert credits == {"done": [1.5, 6.5, 11.5], "failed": [0.25, 0.25, 0.25, 0.5]}
    durations = {trace["name"]: sorted(trace["x"]) for trace in _traces(page, "durations")}
    assert durations["failed"] == [3.0, 3.0, 3.0, 4.0] and durations["done"] == [10.0, 15.0, 15.0]


def test_retried_tasks_list_each_attempt(tmp_path: Path) -> None:
    store, campaign_id = build_campaign(tmp_path)
    with store:
        page = write_report(store, campaign_id, tmp_path / "r.html", clock=_clock).read_text()
    retries = _section(page, "retries")
    assert "1 task(s) needed more than one job." in retries
    assert retries.count('<tr class="') == 2
    failed, done = re.findall(r'<tr class="(\w+)">(.*?)</tr>', retries)
    assert failed[0] == "failed" and done[0] == "done"
    assert f"{RETRIED}<br>" in failed[1] and "done, 2 jobs" in failed[1]
    assert ("<td>1</td><td>alpha</td><td>j-t010-1</td><td>error</td><td>0.50</td>"
            "<td><pre>lost the worker &amp; &lt;the&gt; node running t010</pre></td>") in failed[1]
    assert done[1] == "<td>2</td><td>beta</td><td>j-t010</td><td>finished</td><td>11.50</td><td>-</td>"


def test_a_long_error_of_an_attempt_is_cut(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        campaign_id = store.create_campaign("long", tasks=[{"tile_id": "a", "geometry": square(0, 0)}])
        task = next(store.all_tasks(campaign_id))
        long_error = "x" * (report.MAX_ERROR_CHARS + 500)
        run_job(store, campaign_id, task.id, "b", 1, job_id="j1", end=TaskState.PENDING, started=MAP_T0,
                job_status="error", error=long_error)
        launch(store, campaign_id, task.id, "b", 2)
        page = write_report(store, campaign_id, tmp_path / "r.html", clock=_clock).read_text()
    retries = _section(page, "retries")
    assert "x" * report.MAX_ERROR_CHARS + " …</pre>" in retries and long_error not in page
    # the second job is in flight: not started, it has no bar, no status and no credits yet
    assert "<td>2</td><td>b</td><td>-</td><td>-</td><td>-</td><td>-</td>" in retries
    assert [trace["name"] for trace in _traces(page, "timeline")] == ["failed"]


def test_the_map_draws_the_geography_beneath_the_tiles(tmp_path: Path) -> None:
    """The report's map carries the coastline, borders, rivers and lakes near the tiles, inlined
    in the page (no topojson fetched): lines without hover, first, beneath the tiles' traces."""
    store, campaign_id = build_campaign(tmp_path)
    with store:
        page = write_report(store, campaign_id, tmp_path / "r.html", clock=_clock).read_text()
    traces = _traces(page, "map")
    names = [trace["name"] for trace in traces]
    assert names[:4] == ["coastline", "borders", "rivers", "lakes"]
    assert set(names[4:]) == {"pending", "queued", "running", "done", "failed"}
    for trace in traces[:4]:
        assert trace["mode"] == "lines" and trace["hoverinfo"] == "skip" and trace["showlegend"] is False
    assert any(x is not None for x in traces[1]["x"])  # the Belgian-Dutch border, near the tiles
    assert "topojson" not in _outside_bundle(page)
