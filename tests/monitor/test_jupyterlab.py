"""The example notebook's live map in a real JupyterLab, driven by headless Chromium.

JupyterLab runs from this interpreter in a process of its own on 127.0.0.1, with its config, data,
runtime, settings and workspace folders in the test's tmp folder, and everything that would reach
the internet turned off (news, update checks, the PyPI extension manager). A `sitecustomize` on its
`PYTHONPATH` refuses, and records, any connection beyond loopback from the server and from its
kernels, since the network block of tests/conftest.py only covers the test process.

The test opens a copy of `examples/upscale_antwerp.ipynb` with fast simulated jobs, runs all cells
from the Run menu as a user would, and reads the live map's plotly traces from the page until the
trace ``done`` holds every tile: the widget, drawn while the campaign runs, must update in place.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
import requests

from openeo_upscale.campaign.states import TaskState
from openeo_upscale.grid import tiles
from tests.helpers import free_port, wait_until, with_parameters
from tests.monitor.browser import ARTIFACTS, requested_hosts, screenshot

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "upscale_antwerp.ipynb"

BBOX = {"west": 4.35, "south": 51.10, "east": 4.45, "north": 51.20}
TILE_SIZE = 5000
PARAMETERS: dict[str, object] = {"time_scale": 0.02, "refresh_seconds": 0.5, "bbox": BBOX,
                                 "tile_size": TILE_SIZE, "workdir": "antwerp"}
"""Injected into the copy's parameters cell: the notebook's own speed, area and tile size (stated here
so the test knows how many tiles), a map redrawn twice a second. The campaign then takes about 20 s,
and the widget shows some 4 s after `start()` (building it takes the kernel 3 s): shorter jobs would
leave the map first seen with every tile already done on a busy machine."""

GUARD = '''
import ipaddress, os, socket

_real_connect = socket.socket.connect


def _loopback_only(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            allowed = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            allowed = False
        if not allowed:
            with open(os.environ["OUTBOUND_LOG"], "a") as log:
                log.write(f"{os.getpid()} {address!r}\\n")
            raise OSError(f"only loopback may be reached from this test, not {host}")
    return _real_connect(self, address)


socket.socket.connect = _loopback_only
'''
"""`sitecustomize.py` of JupyterLab and its kernels: loopback only, and a line in OUTBOUND_LOG for
every connection refused."""

SETTINGS = {
    # Neither ask about, nor fetch, Jupyter's news and update notices.
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}
"""User settings of the test's JupyterLab (its settings folder starts empty)."""


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: its base URL, token, and the file of refused outbound connections."""

    url: str
    token: str
    outbound: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}lab/tree/{name}?token={self.token}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}


def lab_command(port: int, token: str, root: Path, home: Path) -> list[str]:
    return [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
        "--ServerApp.terminals_enabled=False", "--allow-root",  # this machine and CI run tests as root
        f"--LabApp.user_settings_dir={home / 'settings'}", f"--LabApp.workspaces_dir={home / 'workspaces'}",
        # Nothing from the internet: no news feed, no update check, no extension listing from PyPI.
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        # No language servers looked for: jupyter-lsp would run `npm`, which logs under ~/.npm.
        "--LanguageServerManager.autodetect=False",
    ]


def lab_environment(home: Path) -> dict[str, str]:
    site = home / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(GUARD)
    for plugin, values in SETTINGS.items():
        path = home / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(values))
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("JUPYTER", "IPYTHON", "PYTHONPATH"))}
    return {**env, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1", "PYTHONPATH": str(site), "OUTBOUND_LOG": str(home / "outbound.log")}


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab serving a folder holding the notebook under test; stopped, with its kernels, after
    the test whatever its outcome (its log is kept as test-artifacts/browser/jupyterlab.log)."""
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    notebook: Any = nbformat.read(NOTEBOOK, as_version=4)
    with_parameters(notebook, PARAMETERS, by="tests/monitor/test_jupyterlab.py")
    nbformat.write(notebook, root / NOTEBOOK.name)
    port, token = free_port(), secrets.token_hex(16)
    lab = Lab(f"http://127.0.0.1:{port}/", token, home / "outbound.log")
    log = tmp_path / "jupyterlab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(lab_command(port, token, root, home), cwd=root, env=lab_environment(home),
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        def answers() -> bool:
            assert process.poll() is None, f"JupyterLab exited: {log.read_text()}"
            try:
                return requests.get(lab.url + "api/status", headers=lab.headers, timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(answers, "JupyterLab to answer", timeout=60, interval=0.1)
        yield lab
    finally:
        stop(process, lab)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, ARTIFACTS / "jupyterlab.log")


def stop(process: subprocess.Popen[bytes], lab: Lab) -> None:
    """Shut JupyterLab down through its API (it stops its kernels first); check nothing is left."""
    children = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
    try:
        requests.post(lab.url + "api/shutdown", headers=lab.headers, timeout=5)
    except requests.RequestException:
        process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    _, alive = psutil.wait_procs(children, timeout=15)
    for leftover in alive:
        leftover.kill()
    assert not alive, f"still running after JupyterLab stopped: {alive}"


# What the page shows: how many code cells, once the status bar says the kernel is connected and idle
# (the notebook's execution indicator says "idle" before the kernel has even started); each code
# cell's prompt ("[ ]:", "[*]:", "[7]:"), and the live map's traces as (name, tiles).
READY = """
const idle = [...document.querySelectorAll('.jp-StatusBar-Item')]
    .some(item => /^(?!No Kernel).+ \\| Idle$/.test(item.textContent.trim()));
const cells = document.querySelectorAll('.jp-Notebook .jp-CodeCell').length;
return idle && !document.querySelector('.jp-Dialog') ? cells : 0;
"""
PROMPTS = """return [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')]
    .map(cell => cell.querySelector('.jp-InputPrompt').textContent.trim())"""
LIVE_MAP = """
const cell = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')]
    .find(c => c.querySelector('.jp-InputArea-editor').textContent.includes('live_map(campaign'));
const plot = cell && cell.querySelector('.js-plotly-plot');
if (!plot || !plot.data) return null;
if (arguments[0]) plot.scrollIntoView({block: 'center'});
return plot.data.map(trace => [trace.name, trace.meta ? trace.meta.tiles : null]);
"""
STATIC_MAP = """return [...document.querySelectorAll('.jp-RenderedPlotly')]
    .map(plot => plot.data.map(trace => [trace.name, trace.meta ? trace.meta.tiles : null]))"""
ERRORS = """return [...document.querySelectorAll('.jp-OutputArea-output')]
    .filter(output => /^application\\/vnd\\.jupyter\\.(stderr|error)$/.test(output.dataset.mimeType || ''))
    .map(output => output.textContent)"""


def run_all_cells(session: Any) -> None:
    """Run > Run All Cells, with the mouse, found by the labels a user reads."""
    from selenium.webdriver.common.by import By

    def labelled(selector: str, label: str) -> Any:
        return next((item for item in session.find_elements(By.CSS_SELECTOR, selector)
                     if item.text.split("\t")[0].strip() == label), None)

    labelled("#jp-menu-panel .lm-MenuBar-item", "Run").click()
    wait_until(lambda: labelled(".lm-MenuBar-menu .lm-Menu-item", "Run All Cells"), "the Run menu",
               timeout=10).click()


def tiles_by_state(traces: list[list[Any]] | None) -> dict[str, int] | None:
    """The live map's tile count of each task state (other traces, if any, left out)."""
    states = {state.value for state in TaskState}
    return None if traces is None else {name: tiles for name, tiles in traces if name in states}


def test_jupyterlab_and_its_kernels_reach_nothing_but_loopback(tmp_path: Path) -> None:
    """The environment JupyterLab runs in installs the guard: loopback works, a name is refused
    before it is even looked up, and the refusal is recorded."""
    probe = """
import socket
assert socket.socket.connect.__name__ == "_loopback_only", "no guard"
with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen()
    socket.create_connection(server.getsockname(), timeout=5).close()
with socket.socket() as client:
    try:
        client.connect(("jupyter.invalid", 443))
    except OSError as exc:
        print(exc)
"""
    home = tmp_path / "home"
    home.mkdir()
    run = subprocess.run([sys.executable, "-c", probe], env=lab_environment(home), capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "only loopback may be reached" in run.stdout
    assert "('jupyter.invalid', 443)" in (home / "outbound.log").read_text()


def watch_the_notebook_run(chromium: Any, jupyterlab: Lab) -> None:
    """Open the notebook, Run All Cells, follow the live map until every tile is done, and wait for
    the last cell."""
    expected = len(tiles(BBOX, TILE_SIZE))
    code_cells = sum(cell.cell_type == "code" for cell in nbformat.read(NOTEBOOK, as_version=4).cells)
    chromium.get(jupyterlab.notebook_url(NOTEBOOK.name))
    wait_until(lambda: chromium.execute_script(READY) == code_cells, "the notebook and its kernel",
               timeout=60)
    run_all_cells(chromium)

    seen: list[dict[str, int]] = []

    def all_done() -> bool:
        counts = tiles_by_state(chromium.execute_script(LIVE_MAP, False))
        if counts is not None and (not seen or counts != seen[-1]):
            seen.append(counts)
        return counts is not None and counts["done"] == expected and sum(counts.values()) == expected

    wait_until(all_done, f"the live map to show {expected} tiles done", timeout=150, interval=0.1)
    assert seen[0]["done"] < expected, f"the live map was first seen with every tile done: {seen}"

    wait_until(lambda: all(prompt.strip("[]:").isdigit() for prompt in chromium.execute_script(PROMPTS)),
               "every cell to have run", timeout=60)
    assert chromium.execute_script(ERRORS) == []
    # plot_map's static figure, drawn by the jupyterlab-plotly renderer, shows the same.
    assert [tiles_by_state(traces) for traces in chromium.execute_script(STATIC_MAP)] == [{"done": expected}]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_live_map_turns_every_tile_done_in_jupyterlab(chromium: Any, jupyterlab: Lab) -> None:
    """Run All Cells in JupyterLab: the live map, shown while the campaign runs, is seen with tiles
    not yet done and then with every tile done; every cell runs without an error; the page loads
    nothing from beyond 127.0.0.1 and neither JupyterLab nor the kernel tries to reach beyond it."""
    try:
        watch_the_notebook_run(chromium, jupyterlab)
    except BaseException:
        screenshot(chromium, "jupyterlab-failure")
        raise
    chromium.execute_script(LIVE_MAP, True)  # scrolled into view for the screenshot
    assert screenshot(chromium, "jupyterlab-live-map").stat().st_size > 0
    hosts = requested_hosts(chromium)
    assert hosts == {"127.0.0.1"}, hosts
    assert not jupyterlab.outbound.exists(), jupyterlab.outbound.read_text()
