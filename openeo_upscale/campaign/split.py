"""A tile whose job ran out of memory, replaced by its four quadrants (``on_memory_error = "split"``).

`Splitter.children` turns a task into the rows of its quadrants for `Store.split_task`:

- tile ids derived from the parent's: ``<parent>.q0`` (south-west), ``.q1`` (south-east), ``.q2``
  (north-west), ``.q3`` (north-east), the grid's own order (south to north, west to east); a child
  that runs out of memory again splits into ``<parent>.q0.q1`` and so on;
- the native extent cut at its midpoints, rounded onto the tile's pixel grid (multiples of the
  task's ``resolution`` parameter where it has one, else of `GRID_STEP_M`): the backends read the
  pixels whose centres lie in a box, so the quadrants hold exactly the parent's pixels, each once;
- the lon/lat geometry of each quadrant, cut to the parent's where the parent's was cut (a tile on
  the edge of the area of interest); a quadrant wholly outside it is left out, as the grid leaves
  out cells that miss the area;
- the UDP arguments rebuilt for the quadrant: the spatial ones (`creator.spatial_parameters`) derived
  from it as for any tile, every other one, the pinned backend and the tile's job options kept.

A tile whose quadrants would be smaller than `RetryPolicy.split_min_size_m`, that has no native
extent or whose UDP has no spatial parameter cannot be split: `CampaignError` says why, and the
reconciler fails it as ``"fail"`` would.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from openeo_upscale.campaign.creator import Udp, parameters_for, spatial_parameters, tile_id_problem
from openeo_upscale.campaign.models import Task
from openeo_upscale.errors import CampaignError
from openeo_upscale.grid.aoi import LONLAT, polygonal, transform, wrap_longitudes

__all__ = ["GRID_STEP_M", "QUADRANTS", "Splitter", "parent_of"]

GRID_STEP_M = 10.0
"""Metres the quadrant edges are rounded to when the task names no ``resolution``: the finest
Sentinel-2 grid, which every coarser product of a grid of whole-kilometre tiles shares."""

QUADRANTS = 4
"""Children of one split tile."""

MAX_TILE_ID = 100
"""Characters a tile id may have in the store (its ``tile_id`` column)."""

SEGMENT_M = 1000.0
"""Longest edge segment of a quadrant's lon/lat outline, as the grid densifies its tiles."""

_CHILD = re.compile(r"^(?P<parent>.+)\.q[0-3]$")
_COVERED = 1e-4
"""Share of a quadrant that may lie outside its parent's geometry before the quadrant is cut to it:
their outlines are densified at different points, which leaves millimetres between the two."""


def parent_of(tile_id: str) -> str | None:
    """The tile id a split child was derived from (``"a.q2"`` -> ``"a"``), or None for any other id.

    Only the id's form is read: whether that parent exists, and was split, is the store's to say."""
    match = _CHILD.match(tile_id)
    return match["parent"] if match else None


@dataclass(frozen=True)
class Splitter:
    """What rebuilding a quadrant's UDP arguments takes: the campaign's UDP, defaults and column map,
    and the smallest quadrant worth a job of its own."""

    udp: Udp
    defaults: Mapping[str, Any] = field(default_factory=dict)
    column_map: Mapping[str, str] = field(default_factory=dict)
    min_size_m: float = 500.0

    def children(self, task: Task) -> list[dict[str, Any]]:
        """The rows (`Store.add_tasks` fields) of the task's quadrants that meet its geometry.

        Raises `CampaignError` naming the task when it cannot be split (see the module docstring)."""
        spatial = [name for name in spatial_parameters(self.udp) if name in task.parameters]
        if not spatial:
            raise self._refusal(task, "the UDP takes no spatial parameter, so a quadrant would compute "
                                      "the whole tile again")
        boxes = self._quadrants(task)
        parent = _geometry(task.geometry)
        rows = []
        for index, box in enumerate(boxes):
            tile_id = f"{task.tile_id}.q{index}"
            problem = tile_id_problem(tile_id) or (
                f"is longer than {MAX_TILE_ID} characters" if len(tile_id) > MAX_TILE_ID else None)
            if problem is not None:
                raise self._refusal(task, f"the child tile id {tile_id!r} {problem}")
            geometry = _lonlat(box, int(task.epsg or 0), parent)
            if geometry is None:
                continue
            rows.append(self._row(task, tile_id, box, geometry, spatial))
        return rows

    def _quadrants(self, task: Task) -> list[tuple[float, float, float, float]]:
        """The four boxes of the task's native extent, cut on its pixel grid, SW, SE, NW, NE."""
        extent = (task.epsg, task.west, task.south, task.east, task.north)
        if any(value is None for value in extent):
            raise self._refusal(task, "it has no native UTM extent (epsg, west, south, east, north) "
                                      "to cut into quadrants")
        west, south, east, north = (float(v) for v in extent[1:] if v is not None)
        step = _grid_step(task)
        x, y = _cut(west, east, step), _cut(south, north, step)
        smallest = min(x - west, east - x, y - south, north - y) if x is not None and y is not None else 0.0
        if x is None or y is None or smallest < self.min_size_m:
            size = f"{east - west:,.0f} x {north - south:,.0f} m"
            raise self._refusal(task, f"it is {size}: its quadrants would be smaller than "
                                      f"split_min_size_m {self.min_size_m:,.0f} m")
        return [(west, south, x, y), (x, south, east, y), (west, y, x, north), (x, y, east, north)]

    def _row(self, task: Task, tile_id: str, box: tuple[float, float, float, float],
             geometry: BaseGeometry, spatial: list[str]) -> dict[str, Any]:
        west, south, east, north = box
        tile = {"tile_id": tile_id, "epsg": task.epsg, "west": west, "south": south, "east": east,
                "north": north, "geometry": geometry}
        derived = parameters_for(self.udp, tile, defaults=self.defaults, column_map=self.column_map)
        missing = [name for name in spatial if name not in derived]
        if missing:
            raise self._refusal(task, f"the parameter(s) {', '.join(missing)} cannot be derived from a "
                                      "quadrant")
        row: dict[str, Any] = {**tile, "geometry": geometry.wkt,
                               "parameters": {**task.parameters, **{name: derived[name] for name in spatial}},
                               "pinned_backend": task.pinned_backend}
        if task.job_options:
            row["job_options"] = dict(task.job_options)
        return row

    @staticmethod
    def _refusal(task: Task, why: str) -> CampaignError:
        return CampaignError(f"task {task.id} ({task.tile_id}) cannot be split: {why}")


def _grid_step(task: Task) -> float:
    """Metres the quadrant edges are rounded to: the task's ``resolution`` (metres) where it names
    one, else `GRID_STEP_M`."""
    resolution = task.parameters.get("resolution")
    if isinstance(resolution, int | float) and not isinstance(resolution, bool) \
            and 1 <= resolution < math.inf:
        return float(resolution)
    return GRID_STEP_M


def _cut(low: float, high: float, step: float) -> float | None:
    """The midpoint of ``[low, high]`` rounded to a multiple of ``step`` (the absolute pixel grid the
    tile's own edges lie on), or None when no multiple lies strictly inside."""
    middle = round((low + high) / 2 / step) * step
    return middle if low < middle < high else None


def _geometry(text: str | None) -> BaseGeometry | None:
    """A task's lon/lat geometry (WKT or GeoJSON text), or None when it has none."""
    if not text:
        return None
    text = text.strip()
    try:
        geometry = shapely.from_geojson(text) if text.startswith("{") else shapely.from_wkt(text)
    except shapely.errors.ShapelyError:
        return None
    return None if geometry is None or geometry.is_empty else geometry


def _lonlat(box: tuple[float, float, float, float], epsg: int, parent: BaseGeometry | None
            ) -> BaseGeometry | None:
    """The quadrant in lon/lat, densified like a grid tile, cut to the parent's geometry where that
    one was cut; None when nothing of it is left."""
    west, south, east, north = box
    segment = min(SEGMENT_M, (east - west) / 4, (north - south) / 4)
    outline = wrap_longitudes(transform(shapely.segmentize(shapely.box(*box), segment), epsg, LONLAT))
    if parent is None:
        return outline
    if outline.difference(parent).area <= _COVERED * outline.area:
        return outline
    inside = polygonal(outline.intersection(parent))
    return None if inside.is_empty or inside.area <= _COVERED * outline.area else inside
