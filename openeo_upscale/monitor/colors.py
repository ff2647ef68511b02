"""The colour of each task state, shared by the dashboard, the notebook map and the report.

The reference notebook's colours for the states it knows (not_started lightgrey, created gold,
queued lightsteelblue, running navy, finished lime, error darkred, skipped darkorange), mapped
onto our states; ours that it lacks get colours that read well beside them.
"""

from __future__ import annotations

from types import MappingProxyType

from openeo_upscale.campaign.states import TaskState

S = TaskState

STATE_COLORS = MappingProxyType({
    S.PENDING: "lightgrey",       # the notebook's not_started
    S.CREATING: "gold",           # its created
    S.QUEUED: "lightsteelblue",
    S.RUNNING: "navy",
    S.FINISHED: "mediumseagreen",  # results on the backend, not yet here
    S.DOWNLOADING: "turquoise",
    S.DONE: "lime",               # its finished: results downloaded
    S.FAILED: "darkred",          # its error
    S.CANCELED: "dimgray",
    S.SKIPPED: "darkorange",
    # Its quadrants are tasks of their own, drawn over it: a see-through tint, so that where a map
    # draws the split tile last the children's colours still show through.
    S.SPLIT: "rgba(147, 112, 219, 0.35)",  # mediumpurple
})
"""CSS colours by task state (names, and one see-through tint), one for every state."""
