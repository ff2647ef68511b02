"""Every process the engine implements has a unit test in this folder.

A process counts as tested when a test module here (``test_*.py``) names its id in one of
three ways, found by parsing the module (so comments and docstrings do not count):

1. as the process of a graph node: ``{"process_id": "<id>", ...}``;
2. as the first positional argument of a call: ``run("<id>", ...)``, ``one("<id>", ...)``,
   ``node("<id>", ...)``;
3. as a key of a dict literal bound to an UPPER_CASE module-level name, the table a
   parametrized test runs: ``REFERENCES = {"<id>": np.max, ...}``.

Write a new test in one of these shapes, comparing with independent numpy code.
"""

from __future__ import annotations

import ast
from pathlib import Path

from openeo_upscale.backend.engine import implemented

HERE = Path(__file__).parent


def _strings(node: ast.AST | None) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    return set()


def named_processes(source: str) -> set[str]:
    """The process ids a test module names in one of the three ways of the module docstring."""
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if _strings(key) == {"process_id"}:
                    found |= _strings(value)
        elif isinstance(node, ast.Call) and node.args:
            found |= _strings(node.args[0])
    for stmt in tree.body:
        targets = (
            stmt.targets
            if isinstance(stmt, ast.Assign)
            else [stmt.target]
            if isinstance(stmt, ast.AnnAssign)
            else []
        )
        value = getattr(stmt, "value", None)
        if isinstance(value, ast.Dict) and any(isinstance(t, ast.Name) and t.id.isupper() for t in targets):
            for key in value.keys:
                found |= _strings(key)
    return found


def test_the_convention_finds_all_three_shapes() -> None:
    source = (
        'TABLE = {"a": 1}\n'
        'lower = {"not_a_table": 1}\n'
        'graph = {"n": {"process_id": "b", "arguments": {"c": 1}}}\n'
        'run("d", x="e")\n'
        '"""a docstring naming "f" """\n'
    )
    assert named_processes(source) == {"a", "b", "d"}


def test_every_implemented_process_has_an_engine_unit_test() -> None:
    tested: set[str] = set()
    for path in sorted(HERE.glob("test_*.py")):
        if path.name != Path(__file__).name:
            tested |= named_processes(path.read_text(encoding="utf-8"))
    missing = sorted(implemented() - tested)
    assert not missing, f"processes without a unit test in {HERE}: {missing}"
