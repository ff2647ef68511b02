"""What a failed job's error says, and what to try next: a job that ran out of memory is retried
with more executor memory, or its tile split in four (`split`), when the campaign's
`RetryPolicy.on_memory_error` says so.

Backends word it differently; these are the lines seen on the geopyspark backends (CDSE, VITO),
on Kubernetes and YARN, and from the local backend. Hand-written: no library knows them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from openeo_upscale.campaign.settings import RetryPolicy, memory_mb

MEMORY_KEY = "executor-memory"
"""The job option the geopyspark backends read the executor memory from (``"2g"``, ``"3072m"``)."""

_MEMORY_ERROR = re.compile(
    r"out of memory|outofmemory|java heap space|exit (?:code|status) 137|container killed"
    r"|killed by (?:yarn|the kernel)|executor lost|lost executor|oomkilled"
    r"|exceeded (?:its|the) memory limit|memory limit exceeded|exceeding memory limits",
    re.IGNORECASE,
)

def is_memory_error(lines: Iterable[str]) -> bool:
    """True when a job's error lines say it ran out of memory (or was killed for it)."""
    return any(_MEMORY_ERROR.search(line) for line in lines)


def more_memory(effective: Mapping[str, Any] | None, policy: RetryPolicy) -> str | None:
    """The executor memory for the next attempt of a job that ran out of memory with the job
    options ``effective``: `RetryPolicy.memory_factor` times what it had (`memory_start` when the
    options said nothing), at most `memory_max`; None when it already had the maximum."""
    had = memory_mb((effective or {}).get(MEMORY_KEY)) or memory_mb(policy.memory_start) or 0.0
    cap = memory_mb(policy.memory_max) or math.inf
    if had >= cap:
        return None
    return f"{math.ceil(min(had * policy.memory_factor, cap))}m"
