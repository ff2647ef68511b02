"""The README's "whole campaign in ten lines", run line for line as the README shows it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest

from openeo_upscale.campaign import TaskState

README = Path(__file__).resolve().parents[1] / "README.md"
SEED = re.compile(r"<!-- seed:start -->\n```python\n(.*?)```\n<!-- seed:end -->", re.S)


def seed_code() -> str:
    """The python block between the README's seed markers."""
    match = SEED.search(README.read_text(encoding="utf-8"))
    assert match, "README.md has no seed block between <!-- seed:start --> and <!-- seed:end -->"
    return match[1]


def test_the_seed_is_ten_lines_of_code() -> None:
    lines = [line for line in seed_code().splitlines() if line.strip()]
    assert len(lines) <= 10, lines


@pytest.mark.timeout(240)
def test_the_seed_runs_the_campaign_as_the_readme_shows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    # The README's lines, unchanged; the last one's value is the widget a notebook would show.
    *body, last = seed_code().rstrip().splitlines()
    exec(compile("\n".join(body), "README.md", "exec"), namespace)
    widget = eval(compile(last, "README.md", "eval"), namespace)
    campaign, backend = namespace["campaign"], namespace["backend"]
    try:
        assert isinstance(widget, go.FigureWidget)
        assert campaign.wait(timeout=200), "the campaign did not finish"
        status = campaign.status()
        assert status.tasks == 9 and status.counts[TaskState.DONE] == 9
        jobs = namespace["connection"].list_jobs()
        assert len(jobs) == 9 and {job["status"] for job in jobs} == {"finished"}
        assert (tmp_path / "antwerp.sqlite").is_file()
    finally:
        campaign.close()
        backend.stop()
