"""The HTML report: one self-contained file, plotly.js once, nothing external, every value escaped."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

from openeo_upscale.campaign import TaskState
from openeo_upscale.campaign.store import Store
from openeo_upscale.cli import main
from openeo_upscale.monitor import report
from openeo_upscale.monitor.report import GRAPH_IDS, write_report
from tests.monitor.test_maps import EVIL, T0, _square, build_campaign

NOW = T0 + timedelta(hours=2)


def _clock() -> datetime:
    return NOW


def _outside_bundle(page: str) -> str:
    """The page with the inlined plotly.js removed, after checking it is there exactly once."""
    bundle = get_plotlyjs()
    assert page.count(bundle) == 1
    assert page.count("plotly.js v") == 1  # the bundle's licence header: not inlined twice in parts
    return page.replace(bundle, "")


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
    assert "<title>Campaign demo</title>" in page
    summary = page[page.index('id="summary"'):page.index("</section>", page.index('id="summary"'))]
    assert re.search(r"done</td><td class=\"num\">3</td>", summary)
    assert re.search(r"failed</td><td class=\"num\">3</td>", summary)
    assert "2025-03-01 08:00:00 UTC to" in summary
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
        rows = [{"tile_id": f"t{i}", "geometry": _square(i, 0)} for i in range(3)]
        campaign_id = store.create_campaign("young", config={"uid": "u"}, tasks=rows)
        task = next(store.all_tasks(campaign_id))
        S = TaskState
        for before, after in [(S.PENDING, S.CREATING), (S.CREATING, S.QUEUED)]:
            store.transition(task.id, before, after, actor="t")
        store.transition(task.id, TaskState.QUEUED, TaskState.RUNNING, actor="t", backend="b", job_id="j1",
                         attempts=1, started=T0)
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
    assert "jobs running per backend (8 jobs)" in page


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
