"""The Natural Earth extract beneath the maps: it ships with the package, loads, and clips to a box."""

from __future__ import annotations

import fnmatch
import gzip
import json
import math
import tomllib
from pathlib import Path

import plotly.graph_objects as go
import pytest
import shapely

from openeo_upscale.monitor import geography
from openeo_upscale.monitor.geography import LAYERS, Geography, GeographyError, Lines

ROOT = Path(__file__).resolve().parents[2]
ANTWERP = (4.40, 51.22)
KM_PER_DEGREE = 111.2


def _lines(found: Lines) -> list[shapely.LineString]:
    """The None-separated coordinates back as lines."""
    lines, current = [], []
    for x, y in zip(found.x, found.y, strict=True):
        if x is None:
            assert y is None
            lines.append(shapely.LineString(current))
            current = []
        else:
            current.append((x, y))
    assert not current, "the last line ends with a gap"
    return lines


def _km(point: tuple[float, float], found: Lines) -> float:
    """Distance in km from ``point`` to the nearest line (equirectangular around the point)."""
    lon, lat = point
    shrink = math.cos(math.radians(lat))
    here = shapely.Point(0, 0)
    projected = (shapely.transform(line, lambda c: (c - (lon, lat)) * (shrink, 1.0))
                 for line in _lines(found))
    return min(line.distance(here) for line in projected) * KM_PER_DEGREE


def _around(point: tuple[float, float], degrees: float) -> geography.Box:
    lon, lat = point
    return lon - degrees, lat - degrees, lon + degrees, lat + degrees


def test_the_extract_loads_once_with_every_layer() -> None:
    extract = geography.extract()
    assert geography.extract() is extract  # read once, kept
    world = extract.near((-180, -90, 180, 90), margin=0)
    assert list(world) == list(LAYERS) == ["coastline", "borders", "rivers", "lakes"]
    for name, found in world.items():
        assert len(found) > 1_000, name
        assert all(-180 <= x <= 180 for x in found.x if x is not None)
        assert all(-90 <= y <= 90 for y in found.y if y is not None)


def test_near_antwerp_the_border_and_the_coast() -> None:
    """The Belgian-Dutch border runs some 15 km north of Antwerp, the coast of the Western Scheldt's
    estuary some 20 km north-west; neither is in the box around the city itself, both in its margin."""
    found = geography.near(_around(ANTWERP, 0.05))
    assert _km(ANTWERP, found["borders"]) < 50
    assert _km(ANTWERP, found["coastline"]) < 100


def test_far_out_at_sea_there_is_nothing() -> None:
    found = geography.near(_around((-35.0, 45.0), 1.0))  # the North Atlantic, west of the Azores
    assert {name: len(lines) for name, lines in found.items()} == dict.fromkeys(LAYERS, 0)
    assert all(lines.x == [] and lines.y == [] for lines in found.values())


def test_clipping_keeps_only_what_is_near() -> None:
    box = (3.0, 50.5, 5.0, 51.5)
    wide = geography.near(box, margin=0.5)
    tight = geography.near(box, margin=0.0)
    everything = geography.near((-180, -90, 180, 90), margin=0)
    for name in LAYERS:
        xs = [x for x in tight[name].x if x is not None]
        ys = [y for y in tight[name].y if y is not None]
        assert all(3.0 <= x <= 5.0 for x in xs) and all(50.5 <= y <= 51.5 for y in ys), name
        assert all(2.5 <= x <= 5.5 for x in wide[name].x if x is not None), name
        assert len(tight[name]) <= len(wide[name]) < len(everything[name]) / 100, name
    assert len(tight["borders"]) > 0 and len(wide["coastline"]) > len(tight["coastline"]) > 0


def test_lines_are_plotly_ready() -> None:
    found = geography.near(_around(ANTWERP, 1.0))
    for name, lines in found.items():
        assert len(lines.x) == len(lines.y), name
        assert [x is None for x in lines.x] == [y is None for y in lines.y], name
        assert all(len(line.coords) >= 2 for line in _lines(lines)), name
        assert json.loads(json.dumps(lines.to_dict())) == {"x": lines.x, "y": lines.y}


def test_the_default_margin_grows_with_the_box() -> None:
    small = (4.0, 51.0, 4.1, 51.1)
    xs = [x for x in geography.near(small)["borders"].x if x is not None]
    assert min(xs) >= 4.0 - geography.MARGIN and max(xs) <= 4.1 + geography.MARGIN
    europe = (-10.0, 36.0, 30.0, 60.0)  # 40 degrees wide: a margin of 10
    xs = [x for x in geography.near(europe)["coastline"].x if x is not None]
    assert min(xs) < -15.0 and min(xs) >= -20.0


def test_view_box_pads_keeps_a_minimum_and_fits_an_aspect() -> None:
    assert geography.view_box((0.0, 0.0, 10.0, 5.0), minimum=0) == pytest.approx((-1.0, -0.5, 11.0, 5.5))
    assert geography.view_box((4.0, 51.0, 4.2, 51.1)) == pytest.approx((3.6, 50.55, 4.6, 51.55))
    west, south, east, north = geography.view_box((4.0, 51.0, 4.2, 51.1), aspect=2.0)
    on_screen = (east - west) * math.cos(math.radians((south + north) / 2)) / (north - south)
    assert on_screen == pytest.approx(2.0) and north - south == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not a lon/lat box"):
        geography.view_box((5.0, 0.0, 4.0, 1.0))
    with pytest.raises(ValueError, match="not a lon/lat box"):
        geography.near((0.0, 0.0, math.nan, 1.0))


def test_traces_are_thin_lines_without_hover_or_legend_beneath_the_tiles() -> None:
    figure = go.Figure(go.Scatter(x=[4.4], y=[51.2], name="done"))
    geography.add_traces(figure, _around(ANTWERP, 0.1))
    names = [trace.name for trace in figure.data]
    assert names == ["done", *LAYERS]
    for trace in figure.data[1:]:
        assert geography.is_geography(trace) and trace.meta == {"geography": trace.name}
        assert trace.mode == "lines" and trace.hoverinfo == "skip" and trace.showlegend is False
        assert trace.zorder == geography.ZORDER < 0  # beneath the tiles, whatever the order
        assert trace.line.width <= 1.0
    assert not geography.is_geography(figure.data[0])
    assert figure.data[names.index("rivers")].line.color == figure.data[names.index("lakes")].line.color


def test_a_missing_or_broken_extract_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GeographyError, match="cannot read the geography extract"):
        Geography.from_file(tmp_path / "nothing.geojson.gz")
    broken = tmp_path / "broken.geojson.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(GeographyError, match="cannot read"):
        Geography.from_file(broken)
    partial = tmp_path / "partial.geojson.gz"
    feature = {"type": "Feature", "properties": {"layer": "coastline"},
               "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}
    collection = {"type": "FeatureCollection", "features": [feature]}
    partial.write_bytes(gzip.compress(json.dumps(collection).encode()))
    with pytest.raises(GeographyError, match="without the layer"):
        Geography.from_file(partial)


def test_the_extract_and_its_note_ship_with_the_package() -> None:
    """The package data patterns of pyproject.toml take in the data file and its licence note, and
    the file stays small."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "openeo_upscale"]
    package = ROOT / "openeo_upscale"
    note = geography.DATA.parent / "README.md"
    for path in (geography.DATA, note):
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
    assert geography.DATA.stat().st_size < 1_500_000
    assert "public domain" in note.read_text() and "1:50m" in note.read_text()
