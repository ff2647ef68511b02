"""How fast the dashboard page becomes interactive in headless Chromium with a large campaign.

Builds a SQLite store of `--tasks` tasks with a realistic events table (the builder of
`dashboard_data.py`), serves the dashboard with `openeo-upscale dashboard` in a process of its
own, and loads the page `--loads` times in Debian's headless Chromium (through Selenium). Each
load is timed from navigation start to the moment the page has drawn its first update with data
(``document.body.dataset.updates >= 1``: tiles, states and overview fetched and plotted), read
from the page's own clock (`performance.now()`). The first load includes the dashboard process
building its tile cache; later loads are warm. Reported: each load and the median.

The goal in issue 6: interactive in under 3 s with 100,000 tasks.

    .venv/bin/python benchmarks/dashboard_page.py --tasks 100000 --loads 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_data import _free_port, build_store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "dashboard_page.json"

READY = "return Number(document.body.dataset.updates || 0) >= 1 ? performance.now() : null"


def chromium() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        raise SystemExit("needs Debian's chromium and chromium-driver (scripts/install-chromium.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--disable-extensions"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dashboard-page-") as folder:
        path = Path(folder) / "campaign.sqlite"
        began = time.monotonic()
        build_store(path, args.tasks).close()
        print(f"store of {args.tasks:,} tasks built in {time.monotonic() - began:.1f} s")
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "openeo_upscale.cli", "dashboard", str(path),
                                   "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(url, timeout=1).ok:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the dashboard did not answer")
                time.sleep(0.1)
            browser = chromium()
            loads = []
            try:
                for number in range(1, args.loads + 1):
                    browser.get("about:blank")
                    browser.get(url)
                    ready = None
                    deadline = time.monotonic() + 60
                    while ready is None and time.monotonic() < deadline:
                        ready = browser.execute_script(READY)
                        if ready is None:
                            time.sleep(0.02)
                    if ready is None:
                        raise SystemExit("the page never drew its first update")
                    seconds = round(float(ready) / 1000.0, 3)
                    loads.append(seconds)
                    print(f"load {number}: interactive after {seconds:.2f} s")
            finally:
                browser.quit()
        finally:
            server.terminate()
            server.wait(10)
    median = statistics.median(loads)
    warm = statistics.median(loads[1:]) if len(loads) > 1 else median
    goal = {"interactive_under_3_s": median < 3.0}
    print(f"median {median:.2f} s (warm {warm:.2f} s); goals: {goal}")
    document = {"benchmark": "dashboard_page", "tasks": args.tasks, "loads_s": loads, "median_s": median,
                "warm_median_s": warm, "goals": goal,
                "environment": {"python": platform.python_version(), "platform": platform.platform(),
                                "cpus": os.cpu_count()}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
