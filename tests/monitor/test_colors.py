"""Every task state has a colour, and the reference notebook's states keep theirs."""

from __future__ import annotations

from openeo_upscale.campaign import TaskState
from openeo_upscale.monitor.colors import STATE_COLORS


def test_every_state_has_a_distinct_colour() -> None:
    assert set(STATE_COLORS) == set(TaskState)
    assert len(set(STATE_COLORS.values())) == len(TaskState)


def test_the_reference_notebook_colours() -> None:
    expected = {"pending": "lightgrey", "queued": "lightsteelblue", "running": "navy", "done": "lime",
                "failed": "darkred", "skipped": "darkorange"}
    assert {state: STATE_COLORS[TaskState(state)] for state in expected} == expected
