"""`openeo-upscale grid`: the command writes GeoJSON and GeoPackage grids and reports them."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box

from openeo_upscale.cli import main
from openeo_upscale.grid import COLUMNS, read_vector, tiles


def test_grid_from_a_bbox_to_geojson(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiles.geojson"
    assert main(["grid", "--bbox", "4.35,51.10,4.45,51.20", "--size", "5000", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "9 tiles of 5000 m in 1 zone(s): 31N (EPSG:32631) 9" in printed
    assert "total 225.0 km²" in printed
    assert f"wrote {out}" in printed
    grid = read_vector(out)
    assert set(grid.columns) == set(COLUMNS)
    assert grid["tile_id"].tolist() == tiles((4.35, 51.10, 4.45, 51.20), 5000)["tile_id"].tolist()
    assert grid.crs.to_epsg() == 4326


def test_grid_from_an_aoi_file_to_geopackage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aoi = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame(geometry=[box(5.9, 50.0, 6.1, 50.1)], crs=4326).to_file(aoi, driver="GeoJSON")
    out = tmp_path / "tiles.gpkg"
    args = ["grid", "--aoi", str(aoi), "--size", "2000", "--overlap", "100", "--clip",
            "--min-coverage", "0.1", "-o", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    expected = tiles(aoi, 2000, overlap=100, clip=True, min_coverage=0.1)
    assert f"{len(expected)} tiles of 2000 m in 2 zone(s): 31N (EPSG:32631)" in printed
    assert "32N (EPSG:32632)" in printed
    assert f"total {expected['area_km2'].sum():,.1f} km²" in printed
    grid = read_vector(out)
    assert grid["tile_id"].tolist() == expected["tile_id"].tolist()
    assert (grid["east"] - grid["west"] == 2200).all()
    assert (grid["aoi_fraction"] >= 0.1).all()


def test_negative_west_needs_the_equals_form(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    assert main(["grid", "--bbox=-0.05,51.45,0.05,51.5", "--size", "10000", "-o", str(out)]) == 0
    assert set(read_vector(tmp_path / "t.parquet")["epsg"]) == {32630, 32631}


@pytest.mark.parametrize(("args", "message"), [
    (["--bbox", "4.35,51.10,4.45"], "a bbox needs 4 numbers"),
    (["--bbox", "4.35,51.10,4.45,north"], "--bbox must be W,S,E,N"),
    (["--bbox", "4.35,51.10,4.45,51.20", "--size", "0"], "size must be positive"),
    (["--bbox", "4.35,84.10,4.45,85.20"], "north of 84°N"),
    (["--aoi", "missing.geojson"], "AOI file not found"),
])
def test_errors_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                      message: str) -> None:
    assert main(["grid", *args, "-o", str(tmp_path / "tiles.geojson")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "tiles.geojson").exists()


def test_an_unknown_output_format_fails_before_tiling(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grid", "--bbox", "4.35,51.10,4.45,51.20", "-o", str(tmp_path / "tiles.csv")]) == 2
    assert "unknown vector file format '.csv'" in capsys.readouterr().err


def test_bbox_and_aoi_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["grid", "--bbox", "1,2,3,4", "--aoi", "x.geojson", "-o", "t.geojson"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
