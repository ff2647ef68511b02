"""Headless Chromium for the browser tests: Debian's chromium and chromedriver through Selenium.

`scripts/install-chromium.sh` (run by `make test`) installs them where it can. Without them the
browser tests are skipped with a message saying so, and under CI (`CI=true`) they fail instead.
Every request the page makes is recorded from Chromium's performance log, so a test can check
that nothing was loaded from outside 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import IN_CI

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
"""Screenshots the browser tests leave behind (ignored by git)."""


def _find(names: tuple[str, ...]) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


def require_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver; the test is skipped (failed under CI) without them."""
    browser, driver = _find(CHROMIUM_NAMES), _find(("chromedriver",))
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None)
        message = (f"browser test skipped: {missing} not found (Debian packages chromium and "
                   "chromium-driver; `make test` installs them when it runs as root)")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return browser, driver


@pytest.fixture
def chromium() -> Iterator[object]:
    """A headless Chromium driven by Selenium, logging every network request."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--no-first-run", "--disable-extensions",
                     "--disable-background-networking", "--disable-component-update"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield session
    finally:
        session.quit()


def requested_hosts(session: object) -> set[str]:
    """Hosts of every request the page sent so far (from Chromium's performance log)."""
    hosts = set()
    for entry in session.get_log("performance"):  # type: ignore[attr-defined]
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if url.startswith(("http://", "https://", "ws://", "wss://")):
                hosts.add(urlsplit(url).hostname or "")
    return hosts


def screenshot(session: object, name: str) -> Path:
    """Save a screenshot under test-artifacts/browser/ and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    session.save_screenshot(str(path))  # type: ignore[attr-defined]
    return path
