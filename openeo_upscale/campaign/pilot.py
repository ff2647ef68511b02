"""Which tiles a pilot runs (`choose`): a few, spread so that what they cost says what all will.

The tasks fall into groups by UTM zone and by whether the job loads a whole tile or a part of one
(an edge tile clipped to the area loads less: `forecast.extent_km2`). Every group gets one tile
while there are tiles to give (whole tiles before partial ones, the largest groups first), the
rest go to the groups in proportion to their sizes. The tiles are then picked one by one, each
the farthest from all those already picked (by place, and by size, so that the models see small
parts and large ones) among the groups with picks left: farthest-point sampling, deterministic,
ties broken by task id.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from openeo_upscale.campaign.forecast import extent_km2
from openeo_upscale.campaign.models import Task

WHOLE = 0.98
"""A task whose extent is at least this share of the campaign's largest counts as a whole tile."""


@dataclass(frozen=True)
class _Tile:
    task: Task
    x: float
    y: float
    km2: float


def _tile(task: Task) -> _Tile:
    if task.geometry:
        centre = shapely.from_wkt(task.geometry).centroid
        x, y = centre.x, centre.y
    else:
        x = ((task.west or 0.0) + (task.east or 0.0)) / 2
        y = ((task.south or 0.0) + (task.north or 0.0)) / 2
    # Degrees of longitude shrink towards the poles: scaled, both axes measure alike.
    return _Tile(task, x * math.cos(math.radians(y)), y, extent_km2(task))


def _allocate(sizes: Sequence[int], count: int) -> list[int]:
    """How many of ``count`` each group gets: one each first (in order), then by largest remainder."""
    shares = [0] * len(sizes)
    left = count
    for i in range(len(sizes)):
        if left and sizes[i]:
            shares[i], left = 1, left - 1
    while left > 0:
        room = [sizes[i] - shares[i] for i in range(len(sizes))]
        if not any(room):
            break
        total = sum(sizes)
        wants = [(sizes[i] * count / total - shares[i], -i) for i in range(len(sizes)) if room[i] > 0]
        _, neg = max(wants)
        shares[-neg] += 1
        left -= 1
    return shares


def _features(tiles: Sequence[_Tile]) -> np.ndarray[Any, Any]:
    """Each tile as a point: its place (both axes scaled alike) and its size, each about 0 to 1."""
    xs = np.array([t.x for t in tiles])
    ys = np.array([t.y for t in tiles])
    sizes = np.array([t.km2 for t in tiles])
    span = max(float(np.ptp(xs)), float(np.ptp(ys)), 1e-9)
    return np.stack([xs / span, ys / span, (sizes - sizes.min()) / max(float(np.ptp(sizes)), 1e-9)], axis=1)


def choose(tasks: Sequence[Task], count: int) -> list[Task]:
    """``count`` of ``tasks`` for a pilot (all of them when there are fewer), in task id order."""
    if count <= 0 or not tasks:
        return []
    tiles = sorted((_tile(task) for task in tasks), key=lambda tile: tile.task.id)
    largest = max(t.km2 for t in tiles)
    group_of = [(largest > 0 and t.km2 < WHOLE * largest, t.task.epsg or 0) for t in tiles]
    members = Counter(group_of)
    keys = sorted(members, key=lambda key: (key[0], -members[key], key[1]))
    quota = dict(zip(keys, _allocate([members[key] for key in keys], min(count, len(tiles))), strict=True))
    points = _features(tiles)
    # Farthest-point sampling over all the tiles, each pick from a group with quota left, so that
    # the groups' picks also keep away from each other's.
    distance = np.full(len(tiles), np.inf)
    first_group = keys[0]
    centre = points.mean(axis=0)
    candidates = [i for i, g in enumerate(group_of) if g == first_group]
    chosen = [min(candidates, key=lambda i: (float(((points[i] - centre) ** 2).sum()), i))]
    while True:
        quota[group_of[chosen[-1]]] -= 1
        distance = np.minimum(distance, ((points - points[chosen[-1]]) ** 2).sum(axis=1))
        open_groups = {key for key, left in quota.items() if left > 0}
        if not open_groups:
            break
        allowed = np.array([g in open_groups for g in group_of]) & (distance > 0)
        if not allowed.any():
            allowed = np.array([g in open_groups for g in group_of])
            allowed[chosen] = False
        chosen.append(int(np.argmax(np.where(allowed, distance, -1.0))))  # ties: the lowest task id
    return sorted((tiles[i].task for i in chosen), key=lambda task: task.id)


def default_size(tasks: int) -> int:
    """The pilot size when none is given: about the square root of the tasks, 4 to 16."""
    return max(1, min(tasks, max(4, min(16, round(math.sqrt(tasks))))))
