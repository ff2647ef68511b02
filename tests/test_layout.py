"""Imports flow one way: the local backend shares nothing with the campaign code."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "openeo_upscale"
CAMPAIGN_SIDE = ("openeo_upscale.campaign", "openeo_upscale.grid", "openeo_upscale.monitor",
                 "openeo_upscale.cli", "openeo_upscale.demo")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_backend_never_imports_campaign_code() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(n for n in _imports(path) if n.startswith(CAMPAIGN_SIDE))
        for path in (PACKAGE / "backend").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_errors_module_imports_nothing_of_ours() -> None:
    assert not {n for n in _imports(PACKAGE / "errors.py") if n.startswith("openeo_upscale")}


def test_campaign_monitor_and_grid_never_import_the_local_backend() -> None:
    """They talk to any openEO backend over HTTP; only the application layer (cli, demo) starts ours."""
    backend = "openeo_upscale.backend"
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(n for n in _imports(path) if n.startswith(backend))
        for folder in ("campaign", "monitor", "grid") for path in (PACKAGE / folder).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_store_and_models_never_import_the_engine() -> None:
    engine = ("openeo_upscale.campaign.scheduler", "openeo_upscale.campaign.runner",
              "openeo_upscale.campaign.campaign", "openeo_upscale.campaign.client",
              "openeo_upscale.campaign.results", "openeo_upscale.monitor")
    for name in ("store", "models", "states"):
        assert not {n for n in _imports(PACKAGE / "campaign" / f"{name}.py") if n.startswith(engine)}, name
