"""One `openeo-upscale` command in its own process, started at the same moment as its siblings.

Run as ``python -m tests.campaign.runner_child --ready R --go G [--hold-in-download S] -- run c.toml``
from the repository root: it imports everything, writes the file ``R``, waits until the file ``G``
exists (the test creates it once every sibling is ready, so that their commands start together,
not one import time apart), then runs the command exactly as the console script does.

``--hold-in-download`` makes each result download pause once after its first piece (see
`tests.campaign.crash_child`), so that a test can kill a runner in the middle of one. ``--host``
makes the runner register under another host name, as a runner on another machine would: the
others cannot see its process, only its heartbeat.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from openeo_upscale.cli import main as cli_main
from tests.campaign.crash_child import widen_crash_windows

GO_POLL = 0.002
"""Seconds between two looks for the go file (the start moments differ by about this much)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ready", type=Path, required=True, help="file written once imports are done")
    parser.add_argument("--go", type=Path, required=True, help="file whose existence starts the command")
    parser.add_argument("--hold-in-download", type=float, default=0.0)
    parser.add_argument("--host", help="the host name the runner registers under")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the openeo-upscale arguments, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    widen_crash_windows(0.0, 0.0, args.hold_in_download)
    if args.host:
        socket.gethostname = lambda: args.host  # type: ignore[assignment]
    args.ready.write_text("ready")
    while not args.go.exists():
        time.sleep(GO_POLL)
    return cli_main(command)


if __name__ == "__main__":
    sys.exit(main())
