#!/usr/bin/env python3
"""Regenerate `tests/campaign/fixtures/store-v1/`: a store of schema version 1, written by that release.

The migration tests need a store exactly as the last release with schema version 1 wrote it, so
this script does not build it with the code beside it: it extracts the package as it was at
`--release` (a commit of this repository) into a temporary folder and runs
`scripts/v1_store_builder.py` against that copy. Written to `--output`:

- ``campaign.sqlite``: the store itself (SQLite, as the release writes it);
- ``postgresql.sql``: the same release's DDL for PostgreSQL, and ``rows.json``: every row of the
  SQLite store, so that a test can build the same version-1 store on PostgreSQL.

    .venv/bin/python scripts/make_v1_store.py          # needs ../shared/udp/max_ndvi.json

Rerun it only to change what the fixture holds; the release it reads from never changes.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELEASE = "ef0e8acb2cfcb17abc165b760c747e7670709f5a"
"""The last commit whose store has schema version 1 (no runners, no ledger, no migrations)."""
OUTPUT = ROOT / "tests" / "campaign" / "fixtures" / "store-v1"


def extract(release: str, into: Path) -> None:
    """The package as it was at `release`, under `into/openeo_upscale`."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", release, "openeo_upscale"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default=RELEASE, help="commit of the release to write the store with")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="fixture folder (replaced)")
    parser.add_argument(
        "--udp",
        type=Path,
        default=ROOT.parent / "shared" / "udp" / "max_ndvi.json",
        help="the max_ndvi UDP document",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        extract(args.release, Path(tmp))
        env = {**os.environ, "PYTHONPATH": tmp}
        builder = ROOT / "scripts" / "v1_store_builder.py"
        subprocess.run(
            [
                sys.executable,
                str(builder),
                "--output",
                str(args.output),
                "--udp",
                str(args.udp),
                "--package-root",
                tmp,
            ],
            check=True,
            env=env,
            cwd=tmp,
        )
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
