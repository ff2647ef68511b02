"""The example notebook shows the README's "whole campaign in ten lines" exactly as the README has it.

The block is shown there, not run (the notebook's cells take the same steps one by one), so only
this test keeps the two copies equal.
"""

from __future__ import annotations

import re
from typing import Any

import nbformat

from tests.conftest import ROOT

README = ROOT / "README.md"
NOTEBOOK = ROOT / "examples" / "upscale_antwerp.ipynb"
SEED = re.compile(r"<!-- seed:start -->\n(```python\n.*?\n```)\n<!-- seed:end -->", re.S)
CODE_BLOCK = re.compile(r"```python\n.*?\n```", re.S)
HEADING = "## The whole campaign in ten lines\n"


def test_the_notebook_shows_the_readmes_seed_block_unchanged() -> None:
    seeds = SEED.findall(README.read_text(encoding="utf-8"))
    assert len(seeds) == 1, "README.md needs one python block between the seed:start and seed:end markers"
    notebook: Any = nbformat.read(NOTEBOOK, as_version=4)
    shown = [c for c in notebook.cells if c.cell_type == "markdown" and c.source.startswith(HEADING)]
    assert len(shown) == 1, f"the notebook needs one markdown cell starting {HEADING!r}"
    assert CODE_BLOCK.findall(shown[0].source) == seeds


def test_the_seed_is_shown_near_the_top_before_the_parameters_cell() -> None:
    """Before any code, so the parameters cell stays the first code cell (papermill's convention)."""
    cells: Any = nbformat.read(NOTEBOOK, as_version=4).cells
    seed = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith(HEADING))
    code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
    assert seed < code[0]
    assert "parameters" in cells[code[0]].metadata.get("tags", [])
