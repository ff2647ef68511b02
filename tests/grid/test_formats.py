"""Writing tile grids to files and reading them back."""

from __future__ import annotations

from pathlib import Path

import pytest

from openeo_upscale.errors import GridError
from openeo_upscale.grid import COLUMNS, read_vector, tiles, write_tiles
from openeo_upscale.grid.formats import vector_format


@pytest.mark.parametrize("name", ["tiles.geojson", "tiles.gpkg", "tiles.parquet", "sub/dir/tiles.json"])
def test_tiles_round_trip(tmp_path: Path, name: str) -> None:
    grid = tiles((4.35, 51.10, 4.45, 51.20), 5000, overlap=10)
    path = write_tiles(grid, tmp_path / name)
    back = read_vector(path)
    assert list(back.columns) == [c for c in COLUMNS if c != "geometry"] + ["geometry"] \
        or list(back.columns) == list(COLUMNS)
    assert back["tile_id"].tolist() == grid["tile_id"].tolist()
    assert back["west"].tolist() == grid["west"].tolist()
    assert back.crs.to_epsg() == 4326
    assert back.geometry.geom_equals_exact(grid.geometry, tolerance=1e-9).all()


def test_rewriting_a_geopackage_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "tiles.gpkg"
    write_tiles(tiles((4.35, 51.10, 4.45, 51.20), 5000), path)
    small = tiles((4.40, 51.16, 4.41, 51.17), 5000)
    write_tiles(small, path)
    assert read_vector(path)["tile_id"].tolist() == small["tile_id"].tolist() == ["32631_595000_5665000_5000"]


def test_unknown_or_unsuitable_formats(tmp_path: Path) -> None:
    grid = tiles((4.35, 51.10, 4.36, 51.11), 5000)
    with pytest.raises(GridError, match=r"unknown vector file format '\.csv'"):
        write_tiles(grid, tmp_path / "tiles.csv")
    with pytest.raises(GridError, match=r"unknown vector file format '\(no suffix\)'"):
        vector_format(tmp_path / "tiles")
    with pytest.raises(GridError, match="Shapefile truncates field names"):
        write_tiles(grid, tmp_path / "tiles.shp")
    assert vector_format("A.GeoJSON") == "GeoJSON"
