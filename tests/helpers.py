"""Helpers shared by test modules: waiting on a condition, a free loopback port, parameters put into
a notebook, a campaign TOML for the CLI against a local backend, and a small campaign in a store
for the monitor's tests. Test modules import
helpers from here (or from their package's helper module), never from another test module."""

from __future__ import annotations

import ast
import json
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import openeo

from openeo_upscale.backend import LocalBackend
from tests.conftest import ANTWERP_BBOX, MAX_NDVI_URL

T = TypeVar("T")


WAIT_SECONDS = 30.0
"""Deadline of every wait; generous, as a wait normally ends within a second or two."""


def wait_until(condition: Callable[[], T], what: str, *, timeout: float = WAIT_SECONDS,
               interval: float = 0.02) -> T:
    """Poll `condition` until it returns something truthy (returned), failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


BBOX = [ANTWERP_BBOX[k] for k in ("west", "south", "east", "north")]
USER_ENV = "TEST_LOCAL_USERNAME"
PASSWORD_ENV = "TEST_LOCAL_PASSWORD"


def campaign_toml(tmp_path: Path, url: str, udp_dir: Path, *, extra: str = "", backend_extra: str = "",
                  name: str = "antwerp", bbox: list[float] | None = None, size: int = 5000,
                  retry: str = "max_attempts = 1", tables: str = "") -> Path:
    """A campaign TOML in `tmp_path` running max_ndvi over Antwerp (or `bbox`, cut in tiles of `size`
    metres) on the local backend at `url`: `extra` top-level keys, `retry` the body of ``[retry]``,
    `tables` more tables (``[limits]`` ...), `backend_extra` more keys of the backend."""
    path = tmp_path / "campaign.toml"
    path.write_text(f"""
store = "campaign.sqlite"
name = "{name}"
output_dir = "results"
{extra}

[grid]
bbox = {bbox or BBOX}
size = {size}

[udp]
file = {json.dumps(str(udp_dir / "max_ndvi.json"))}
namespace = "{MAX_NDVI_URL}"

[defaults]
temporal_extent = [2023-05-01, "2023-07-01"]

[polling]
min_interval = 0.05
max_interval = 0.2

[retry]
{retry}

{tables}

[[backends]]
name = "local"
url = "{url}"
parallel_jobs = 4
auth = "basic"
username_env = "{USER_ENV}"
password_env = "{PASSWORD_ENV}"
{backend_extra}
""")
    return path


def local_backend_jobs(backend: LocalBackend) -> list[dict[str, Any]]:
    """The backend's own job list, through the official client."""
    jobs: list[dict[str, Any]] = openeo.connect(backend.url).authenticate_basic("demo", "demo").list_jobs()
    return jobs


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def with_parameters(notebook: Any, values: Mapping[str, object], by: str) -> None:
    """Append assignments to the notebook's cell tagged ``parameters`` (papermill's convention),
    after checking that it declares each one; `by` names the test module in a comment."""
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    declared = {target.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name)}
    unknown = set(values) - declared
    assert not unknown, f"the notebook has no parameters {sorted(unknown)}"
    lines = [f"{name} = {value!r}" for name, value in values.items()]
    cell.source += f"\n\n# injected by {by}\n" + "\n".join(lines)
