"""The dashboard and the report in headless Chromium.

A campaign runs in another process (`openeo-upscale run`) against the local backend while the
dashboard, also in a process of its own, serves the same store; the page must show a tile turn
`done` without reloading, and load nothing from outside 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from openeo_upscale.backend import LocalBackend
from openeo_upscale.campaign import Store
from tests.conftest import ANTWERP_BBOX
from tests.helpers import PASSWORD_ENV, USER_ENV, campaign_toml, wait_until
from tests.monitor.browser import requested_hosts, screenshot

ROOT = Path(__file__).resolve().parents[2]
BBOX = [ANTWERP_BBOX[k] for k in ("west", "south", "east", "north")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(*args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, USER_ENV: "demo", PASSWORD_ENV: "demo"}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "openeo_upscale.cli", *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
def running_campaign(tmp_path: Path, backend: LocalBackend, udp_dir: Path) -> Iterator[Path]:
    """`openeo-upscale run` in a process of its own; yields the store's path once it exists."""
    toml = campaign_toml(tmp_path, backend.url, udp_dir)  # the CLI tests' campaign: same TOML, same secrets
    process = start("run", str(toml), "--quiet", log=tmp_path / "run.log")
    store = tmp_path / "campaign.sqlite"
    try:
        def created() -> bool:
            if not store.exists():
                return False
            with Store.open(store) as opened:
                return bool(opened.campaigns())

        wait_until(created, "the campaign in the store", timeout=60)
        yield store
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def dashboard(running_campaign: Path, tmp_path: Path) -> Iterator[str]:
    """`openeo-upscale dashboard` in a process of its own; yields its URL once it answers."""
    port = free_port()
    process = start("dashboard", str(running_campaign), "--port", str(port), log=tmp_path / "dashboard.log")
    url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(answers, "the dashboard", timeout=30)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_dashboard_shows_a_tile_turning_done_live(chromium: object, dashboard: str) -> None:
    chromium.get(dashboard)  # type: ignore[attr-defined]
    done = wait_until(
        lambda: int(chromium.execute_script("return Number(document.body.dataset.done || 0)")),  # type: ignore[attr-defined]
        "a tile to turn done on the map", timeout=90)
    assert done >= 1
    screenshot(chromium, "dashboard")
    assert chromium.find_element("id", "map").is_displayed()  # type: ignore[attr-defined]


def test_dashboard_loads_nothing_from_outside(chromium: object, dashboard: str) -> None:
    chromium.get(dashboard)  # type: ignore[attr-defined]
    wait_until(lambda: chromium.execute_script(  # type: ignore[attr-defined]
        "return document.readyState === 'complete' && typeof Plotly !== 'undefined'"), "the page", timeout=30)
    hosts = requested_hosts(chromium)
    assert hosts == {"127.0.0.1"}, hosts


def test_report_renders_its_map_and_charts_offline(chromium: object, tmp_path: Path) -> None:
    """A report of a small campaign, opened from disk: the map and the four charts draw, and the
    page asks for nothing over the network."""
    from openeo_upscale.monitor.report import write_report
    from tests.monitor.builders import build_campaign

    store, campaign_id = build_campaign(tmp_path)
    with store:
        path = write_report(store, campaign_id, tmp_path / "report.html")
    chromium.get(path.as_uri())  # type: ignore[attr-defined]
    drawn = """return ['map', 'timeline', 'durations', 'credits'].every(id => {
        const div = document.getElementById(id);
        return div && div._fullLayout && div.querySelector('svg.main-svg');
    })"""
    wait_until(lambda: chromium.execute_script(drawn), "the report's charts", timeout=30)  # type: ignore[attr-defined]
    traces = chromium.execute_script(  # type: ignore[attr-defined]
        "return document.querySelectorAll('#map .scatterlayer .trace').length")
    assert traces >= 2
    screenshot(chromium, "report")
    assert requested_hosts(chromium) == set()


def test_a_failed_tasks_attempts_unfold_in_the_failures_table(chromium: object, tmp_path: Path) -> None:
    """A failed task with two jobs gets a button that lists both attempts below its row, which stays
    open across polls; a task with one job gets none. The backends table counts the ledger's jobs."""
    from openeo_upscale.campaign import TaskState
    from openeo_upscale.monitor.dashboard import create_app
    from tests.monitor.builders import launch, run_job, serving

    S = TaskState
    path = tmp_path / "store.sqlite"
    with Store.open(path) as store:
        rows = [{"tile_id": t, "geometry": f"POLYGON (({i} 0, {i + 1} 0, {i + 1} 1, {i} 1, {i} 0))"}
                for i, t in enumerate("ab")]
        cid = store.create_campaign("demo", tasks=rows)
        retried, once = (task.id for task in store.all_tasks(cid))
        run_job(store, cid, retried, "alpha", 1, job_id="j-1", end=S.PENDING, job_status="error", costs=0.5,
                error="lost the node")
        run_job(store, cid, retried, "beta", 2, job_id="j-2", end=S.FAILED, job_status="error", costs=0.25,
                error="out of memory")
        launch(store, cid, once, "alpha", 1)
        store.transition(once, S.CREATING, S.FAILED, actor="test", error="refused")

    script = chromium.execute_script  # type: ignore[attr-defined]
    attempts = """return [...document.querySelectorAll('#failures tr.attempt')]
        .map(row => [...row.cells].map(cell => cell.textContent))"""
    button = f"document.querySelector('#failures tr[data-task=\"{retried}\"] button.jobs')"
    with serving(create_app(str(path))) as url:
        chromium.get(url + "/")  # type: ignore[attr-defined]
        wait_until(lambda: script("return Number(document.body.dataset.updates || 0)"), "the first update",
                   timeout=30)
        assert script(f"return document.querySelector('#failures tr[data-task=\"{once}\"] button')") is None
        assert script(f"return {button}.textContent") == "2 ▸"
        ledger = """return [...document.querySelectorAll('#backends tr[data-backend]')]
            .map(row => [row.dataset.backend, ...[...row.cells].slice(-2).map(cell => cell.textContent)])"""
        assert script(ledger) == [["alpha", "2", "0.5"], ["beta", "1", "0.25"]]

        script(f"{button}.click()")
        shown = wait_until(lambda: script(attempts), "the attempts of the retried task", timeout=30)
        unknown = "\N{EN DASH}"  # what the page shows for a value not known (no duration: never started)
        assert shown == [["1", "alpha", "j-1", "error", unknown, "0.5", "lost the node"],
                         ["2", "beta", "j-2", "error", unknown, "0.25", "out of memory"]]
        assert script(f"return {button}.getAttribute('aria-expanded')") == "true"
        updates = "return Number(document.body.dataset.updates)"
        polls = int(script(updates))
        wait_until(lambda: int(script(updates)) > polls, "another poll", timeout=30)
        assert script(attempts) == shown

        script(f"{button}.click()")
        assert script("return document.querySelectorAll('#failures tr.attempts').length") == 0


def test_tasks_added_while_the_dashboard_is_open_appear_on_its_map(chromium: object, tmp_path: Path) -> None:
    """A split tile's quadrants are tasks added mid-run: the map takes their outlines in at the next
    poll, without a reload."""
    from openeo_upscale.monitor.dashboard import create_app
    from tests.monitor.builders import build_campaign, serving, square

    store, campaign_id = build_campaign(tmp_path)
    script = chromium.execute_script  # type: ignore[attr-defined]
    with store, serving(create_app(store)) as url:
        chromium.get(url + "/")  # type: ignore[attr-defined]
        wait_until(lambda: script("return Number(document.body.dataset.updates || 0)"), "the first update",
                   timeout=30)
        assert script("return view.ids.length") == 12
        added = [{"tile_id": f"added{i}", "geometry": square(5 + i, 0)} for i in range(2)]
        store.add_tasks(campaign_id, added)
        wait_until(lambda: script("return view.ids.length") == 14, "the added tiles on the map", timeout=30)
        assert script("return view.tileIds.slice(-2)") == ["added0", "added1"]
