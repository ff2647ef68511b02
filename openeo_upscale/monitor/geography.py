"""Coastlines, country borders, rivers and lakes to draw beneath the tile maps, offline.

The package ships a small extract of Natural Earth 1:50m (public domain; see ``geodata/README.md``):
one set of lon/lat lines per layer (`LAYERS`). `Geography.near` clips them to a box around the
tiles, so that a figure or a response carries only what is near them, as plotly-ready coordinate
arrays (lines separated by None). `add_traces` draws them on a plotly figure as thin lines named
after their layer, without hover or legend entry, beneath the tiles. `extract` loads the file
once and keeps it.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import shapely

from openeo_upscale.errors import UpscaleError

DATA = Path(__file__).resolve().parent / "geodata" / "natural_earth_50m.geojson.gz"
"""The extract the package ships: Natural Earth 1:50m lines per layer, gzipped GeoJSON."""

LAYERS = ("coastline", "borders", "rivers", "lakes")
"""The layers, in drawing order: each is one trace of that name."""

MARGIN = 0.5
"""Degrees around the asked box within which lines are kept at least (what panning a little shows)."""

MARGIN_FRACTION = 0.25
"""Of the asked box's larger side, the margin kept around it when that is more than `MARGIN`."""

ZORDER = -2
"""Drawing order of the geography traces: beneath the tiles (0) and the split tiles (-1)."""

STYLES: dict[str, dict[str, Any]] = {
    "coastline": {"color": "#8a8a8a", "width": 1.0},
    "borders": {"color": "#a0a0a0", "width": 1.0, "dash": "dot"},
    "rivers": {"color": "#7fa7d6", "width": 0.8},
    "lakes": {"color": "#7fa7d6", "width": 0.8},
}
"""The line of each layer: thin, grey for land and sea, blue for water."""

_DIGITS = 4
"""Decimals kept of a clipped coordinate (about 10 m): the extract holds three."""

Box = tuple[float, float, float, float]
"""West, south, east, north in degrees."""


class GeographyError(UpscaleError):
    """The geography extract is missing or unreadable."""


@dataclass(frozen=True)
class Lines:
    """One layer's lines as plotly draws them: longitudes and latitudes, lines separated by None."""

    x: list[float | None]
    y: list[float | None]

    def __len__(self) -> int:
        """The number of points (gaps not counted)."""
        return sum(v is not None for v in self.x)

    def to_dict(self) -> dict[str, list[float | None]]:
        return {"x": self.x, "y": self.y}


class Geography:
    """The lines of each layer, indexed for clipping to a box."""

    def __init__(self, layers: dict[str, list[Any]]) -> None:
        missing = [name for name in LAYERS if name not in layers]
        if missing:
            raise GeographyError(f"geography extract without the layer(s) {', '.join(missing)}")
        self._lines = {name: np.asarray(layers[name], dtype=object) for name in LAYERS}
        self._trees = {name: shapely.STRtree(lines) for name, lines in self._lines.items()}

    @classmethod
    def from_file(cls, path: str | Path = DATA) -> Geography:
        """Read a gzipped GeoJSON FeatureCollection of (Multi)LineStrings with a ``layer`` property."""
        try:
            with gzip.open(path, "rt", encoding="utf-8") as stream:
                collection = json.load(stream)
        except (OSError, ValueError) as exc:
            raise GeographyError(f"cannot read the geography extract {path}: {exc}") from exc
        layers: dict[str, list[Any]] = {}
        for feature in collection.get("features", []):
            geometry = shapely.geometry.shape(feature["geometry"])
            parts = getattr(geometry, "geoms", [geometry])
            layers.setdefault(feature["properties"]["layer"], []).extend(parts)
        return cls(layers)

    def near(self, box: Box, *, margin: float | None = None) -> dict[str, Lines]:
        """Each layer's lines within ``margin`` degrees of ``box`` (by default `MARGIN`, or
        `MARGIN_FRACTION` of its larger side), clipped to that wider box."""
        west, south, east, north = _checked(box)
        if margin is None:
            margin = max(MARGIN, MARGIN_FRACTION * max(east - west, north - south))
        wide = (max(west - margin, -180.0), max(south - margin, -90.0),
                min(east + margin, 180.0), min(north + margin, 90.0))
        return {name: self._clipped(name, wide) for name in LAYERS}

    def _clipped(self, layer: str, box: Box) -> Lines:
        candidates = self._lines[layer][self._trees[layer].query(shapely.box(*box))]
        xs: list[float | None] = []
        ys: list[float | None] = []
        for clipped in shapely.clip_by_rect(candidates, *box):
            for part in getattr(clipped, "geoms", [clipped]):
                if part.is_empty or part.geom_type != "LineString":
                    continue  # a line that only touches the box's edge is clipped to a point
                coords = np.round(shapely.get_coordinates(part), _DIGITS)
                xs.extend(coords[:, 0].tolist())
                ys.extend(coords[:, 1].tolist())
                xs.append(None)
                ys.append(None)
        return Lines(xs, ys)


@lru_cache(maxsize=1)
def extract() -> Geography:
    """The package's extract, read on first use and kept."""
    return Geography.from_file(DATA)


def near(box: Box, *, margin: float | None = None) -> dict[str, Lines]:
    """The package's lines near ``box`` (`Geography.near` of `extract`)."""
    return extract().near(box, margin=margin)


def view_box(bounds: Box, *, aspect: float | None = None, pad: float = 0.1, minimum: float = 1.0) -> Box:
    """A box around ``bounds`` to show: padded by ``pad`` of its size on each side, at least
    ``minimum`` degrees wide and high (so that a small campaign shows the land around it) and, given
    an ``aspect`` (width / height on screen), widened or heightened to it."""
    west, south, east, north = _checked(bounds)
    mid_x, mid_y = (west + east) / 2, (south + north) / 2
    width = max((east - west) * (1 + 2 * pad), minimum)
    height = max((north - south) * (1 + 2 * pad), minimum)
    if aspect is not None and aspect > 0:
        # On screen a degree of longitude is cos(latitude) as long as one of latitude.
        shrink = max(math.cos(math.radians(mid_y)), 0.05)
        if width * shrink < aspect * height:
            width = aspect * height / shrink
        else:
            height = width * shrink / aspect
    return (mid_x - width / 2, max(mid_y - height / 2, -90.0),
            mid_x + width / 2, min(mid_y + height / 2, 90.0))


def traces(lines: dict[str, Lines]) -> list[go.Scatter]:
    """One plotly trace per layer, named after it: thin lines, no hover, no legend entry, beneath
    the tiles."""
    return [
        go.Scatter(name=name, x=found.x, y=found.y, mode="lines", line=STYLES[name], hoverinfo="skip",
                   showlegend=False, zorder=ZORDER, meta={"geography": name})
        for name, found in lines.items()
    ]


def add_traces(figure: go.Figure, box: Box, *, margin: float | None = None) -> None:
    """Add the geography near ``box`` to ``figure`` as traces drawn beneath the others."""
    figure.add_traces(traces(near(box, margin=margin)))


def is_geography(trace: Any) -> bool:
    """Whether a plotly trace is one of the geography's (from `traces`)."""
    meta = getattr(trace, "meta", None)
    return isinstance(meta, dict) and "geography" in meta


def _checked(box: Box) -> Box:
    west, south, east, north = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (west, south, east, north)) or west > east or south > north:
        raise ValueError(f"not a lon/lat box (west, south, east, north): {box!r}")
    return west, south, east, north
