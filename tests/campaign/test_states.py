"""The closed vocabularies and the transition table."""

from __future__ import annotations

from openeo_upscale.campaign import (
    JOB_ACTIVE,
    JOB_TERMINAL,
    TASK_ACTIVE,
    TASK_HOLDING,
    TASK_TERMINAL,
    TASK_TRANSITIONS,
    JobStatus,
    TaskState,
    is_allowed,
)


def test_vocabularies_are_the_documented_strings() -> None:
    assert [s.value for s in TaskState] == ["pending", "creating", "queued", "running", "finished",
                                            "downloading", "done", "failed", "canceled", "skipped",
                                            "split"]
    assert [s.value for s in JobStatus] == ["created", "queued", "running", "finished", "error", "canceled"]
    assert TaskState("queued") == "queued"


def test_active_and_terminal_sets_are_disjoint() -> None:
    assert not TASK_ACTIVE & TASK_TERMINAL
    assert not JOB_ACTIVE & JOB_TERMINAL
    assert TaskState.RUNNING in TASK_ACTIVE and TaskState.RUNNING not in TASK_TERMINAL
    assert JobStatus.ERROR in JOB_TERMINAL


def test_transition_table_covers_every_state() -> None:
    assert set(TASK_TRANSITIONS) == set(TaskState)
    assert TASK_TRANSITIONS[TaskState.DONE] == frozenset()
    for state in TASK_ACTIVE:
        assert is_allowed(state, TaskState.CANCELED), state
    for state in TASK_TERMINAL - {TaskState.DONE, TaskState.FAILED, TaskState.SPLIT}:
        assert TASK_TRANSITIONS[state] == {TaskState.PENDING}, state
    # A split tile's quadrants run it now: nothing leaves split, and only a state holding a job
    # (whose job ran out of memory) enters it.
    assert TASK_TRANSITIONS[TaskState.SPLIT] == frozenset()
    assert {s for s in TaskState if is_allowed(s, TaskState.SPLIT)} == TASK_HOLDING
    # A failed download is retried alone: back to finished, its job's results fetched again.
    assert TASK_TRANSITIONS[TaskState.FAILED] == {TaskState.PENDING, TaskState.FINISHED}
    assert not is_allowed(TaskState.PENDING, TaskState.DONE)
