"""The example notebooks run to the end against the local backend, in a kernel of this interpreter.

The kernel is a separate process, beyond the reach of the network block in tests/conftest.py: the
test prepends a cell that installs the same loopback-only guard in the kernel, so a notebook that
reaches beyond 127.0.0.1 fails here.
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest

from tests.conftest import ROOT
from tests.helpers import with_parameters

EXAMPLES = ROOT / "examples"
ANTWERP = EXAMPLES / "upscale_antwerp.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "examples"

GUARD = '''
import ipaddress, socket, sys

_real_connect = socket.socket.connect

def _loopback_only(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise RuntimeError(f"the example may only reach loopback, not {host}")
    return _real_connect(self, address)

socket.socket.connect = _loopback_only
print(sys.executable)
'''
"""Prepended to the notebook under test: the kernel's network block, and which Python it runs."""


def execute(path: Path, cwd: Path, values: Mapping[str, object]) -> Any:
    notebook = nbformat.read(path, as_version=4)
    with_parameters(notebook, values, by="tests/test_examples.py")
    notebook.cells.insert(0, nbformat.v4.new_code_cell(GUARD))
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=60,
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return notebook


def tagged(notebook: Any, tag: str) -> Any:
    return next(c for c in notebook.cells if tag in c.metadata.get("tags", []))


def text_output(cell: Any) -> str:
    """The cell's printed text and the plain-text form of its result."""
    parts = [o.get("text", "") for o in cell.outputs if o.output_type == "stream"]
    parts += [o.data.get("text/plain", "") for o in cell.outputs if o.output_type == "execute_result"]
    return "".join(parts)


def test_the_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(ANTWERP, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)


def run_antwerp(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                **values: object) -> dict[str, Any]:
    """Execute the Antwerp notebook with fast simulated jobs, keep it with its outputs under
    test-artifacts/examples/ as ``name``; check it and return its summary."""
    # Older jupyter_core warns about its config folders unless told to use platformdirs.
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    notebook = execute(ANTWERP, tmp_path, {"time_scale": 0.005, "refresh_seconds": 0.5, "workdir": "antwerp",
                                           **values})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, ARTIFACTS / f"{ANTWERP.stem}-{name}.ipynb")

    assert text_output(notebook.cells[0]).strip() == sys.executable
    summary: dict[str, Any] = ast.literal_eval(text_output(tagged(notebook, "summary")))
    assert summary["tasks"] >= 4
    assert summary["counts"]["done"] == summary["tasks"], summary
    assert summary["backends"]["local"]["parallel_jobs"] == 2
    live = tagged(notebook, "live-map").outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in live), live
    assert f"{summary['tasks']} items" in text_output(tagged(notebook, "results"))
    collection = json.loads((tmp_path / "antwerp" / "results" / "collection.json").read_text())
    assert collection["type"] == "Collection"
    return summary


@pytest.mark.slow
def test_antwerp_notebook_with_the_packaged_udp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebook as a user runs it first: no parameters but speed, the package's own UDP."""
    run_antwerp("packaged-udp", tmp_path, monkeypatch)


@pytest.mark.slow
def test_antwerp_notebook_with_the_apex_udp(tmp_path: Path, udp_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference workflow: APEx max_ndvi by its public URL, resolved offline from ../shared/udp."""
    run_antwerp("apex-udp", tmp_path, monkeypatch, udp_dir=str(udp_dir))
