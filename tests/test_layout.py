"""Imports flow one way: the local backend shares nothing with the campaign code, and only the store
touches the store's tables."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "openeo_upscale"
STORE = PACKAGE / "campaign" / "store"
STORE_MODULE = "openeo_upscale.campaign.store"
SCHEMA = f"{STORE_MODULE}.schema"
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


def _offenders(folders: tuple[str, ...], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {
        str(path.relative_to(PACKAGE)): sorted(n for n in _imports(path) if n.startswith(forbidden))
        for folder in folders for path in (PACKAGE / folder).rglob("*.py")
    }
    return {k: v for k, v in found.items() if v}


APPLICATION = ("openeo_upscale.cli", "openeo_upscale.demo")


def test_imports_follow_the_flow_of_data() -> None:
    """AOI -> grid -> campaign -> monitor, with the application layer (cli, demo) on top: no package
    imports one further along the flow, and none imports the application layer."""
    assert _offenders(("grid",), ("openeo_upscale.campaign", "openeo_upscale.monitor", *APPLICATION)) == {}
    assert _offenders(("campaign",), ("openeo_upscale.monitor", *APPLICATION)) == {}
    assert _offenders(("monitor",), APPLICATION) == {}


def test_the_store_and_models_never_import_the_engine() -> None:
    engine = ("openeo_upscale.campaign.scheduler", "openeo_upscale.campaign.reconcile",
              "openeo_upscale.campaign.bookkeeping", "openeo_upscale.campaign.slots",
              "openeo_upscale.campaign.runner",
              "openeo_upscale.campaign.campaign", "openeo_upscale.campaign.client",
              "openeo_upscale.campaign.download_pool", "openeo_upscale.monitor")
    paths = [*STORE.rglob("*.py"), PACKAGE / "campaign" / "models.py", PACKAGE / "campaign" / "states.py"]
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(n for n in _imports(path) if n.startswith(engine))
        for path in paths
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def _outside_the_store() -> list[Path]:
    """Our modules that must read the store through `Store`'s named queries: all but the store package
    and the local backend (which keeps its own state database and never imports campaign code)."""
    return [path for path in PACKAGE.rglob("*.py")
            if not path.is_relative_to(STORE) and not path.is_relative_to(PACKAGE / "backend")]


def _reaches_into_the_store(source: str) -> list[str]:
    """What a module's source does that only the store may: import the schema or a table, use an engine."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith(SCHEMA)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(SCHEMA):
                found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names
                      if a.name.endswith("_table") or (node.module == STORE_MODULE and a.name == "schema")]
        elif isinstance(node, ast.Attribute) and node.attr == "engine":
            found.append(f".engine (line {node.lineno})")
    return found


def test_only_the_store_touches_the_tables() -> None:
    """Everything else reads the store through `Store`'s named queries."""
    offenders = {str(path.relative_to(PACKAGE)): found for path in _outside_the_store()
                 if (found := _reaches_into_the_store(path.read_text()))}
    assert offenders == {}


def test_the_table_check_catches_each_kind_of_reach() -> None:
    caught = {
        "from openeo_upscale.campaign.store.schema import jobs_table": 2,  # the module and the name
        "import openeo_upscale.campaign.store.schema": 1,
        "from openeo_upscale.campaign.store import schema": 1,
        "from openeo_upscale.campaign.store import Store, tasks_table": 1,
        "with store.engine.connect() as conn: pass": 1,
        "from openeo_upscale.campaign.store import Store\nstore.all_tasks(1)": 0,
    }
    assert {source: len(_reaches_into_the_store(source)) for source in caught} == caught
    assert PACKAGE / "monitor" / "data.py" in _outside_the_store()
    assert not any(path.is_relative_to(STORE) for path in _outside_the_store())
