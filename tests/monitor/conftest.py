"""Monitor test fixtures: headless Chromium (see tests/monitor/browser.py)."""

from tests.monitor.browser import chromium  # noqa: F401 - a fixture, used by name
