"""Every command the README shows is exercised somewhere, and its Python snippets import real names.

- `.venv/bin/openeo-upscale SUB ...`: some test runs the CLI with that subcommand (a list starting
  with "SUB" given to `main`, to `python -m openeo_upscale.cli`, or to the tests' `start` helper);
  `results verify` and `results mosaic` count as "results", "verify" and so on.
- `make TARGET`: the Makefile has the target (`make test` is what CI runs, `make demo` runs the
  pipeline that `test_demo_runs_the_reference_pipeline_on_two_tiles` tests on two tiles).
- ```python blocks: they parse, and every name they import exists.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TESTS = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "tests").rglob("test_*.py"))


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def commands() -> list[list[str]]:
    found = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                found.append(shlex.split(line))
    return found


CLI_CALLS = [words[1:] for words in commands() if words[0].endswith("openeo-upscale")]
MAKE_CALLS = [words[1:] for words in commands() if words[0] == "make"]


def test_the_readme_shows_commands() -> None:
    assert len(CLI_CALLS) >= 8 and MAKE_CALLS


@pytest.mark.parametrize("words", CLI_CALLS, ids=lambda words: " ".join(words[:2]))
def test_each_cli_command_is_run_by_a_test(words: list[str]) -> None:
    sub = [words[0], words[1]] if words[0] in ("results", "backend") else [words[0]]
    quoted = r",\s*".join(f'"{w}"' for w in sub)
    pattern = rf'(main\(\[\s*{quoted}|"openeo_upscale\.cli",\s*{quoted}|start\(\s*{quoted})'
    assert re.search(pattern, TESTS), f"no test runs `openeo-upscale {' '.join(sub)}`"


@pytest.mark.parametrize("words", MAKE_CALLS, ids=lambda words: " ".join(words))
def test_each_make_target_exists(words: list[str]) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in (w for w in words if "=" not in w):
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), target


@pytest.mark.parametrize("source", blocks("python"), ids=lambda s: s.splitlines()[0][:40])
def test_each_python_snippet_parses_and_imports_real_names(source: str) -> None:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
