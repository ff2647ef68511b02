"""Result files as CDSE writes them: a GeoTIFF per date label, CRS, transform, nodata, band names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
import xarray as xr

from openeo_upscale.backend.engine.cubes_spatial import VectorCube
from openeo_upscale.backend.engine.output import ResultWriter, UnsupportedFormat


def cube(dates: int = 2) -> xr.DataArray:
    """A small float cube on a 10 m UTM grid (pixel centres), with a NaN."""
    xs = 590000.0 + 5.0 + 10.0 * np.arange(4)
    ys = 5665000.0 - 5.0 - 10.0 * np.arange(3)
    values = np.arange(dates * 2 * 3 * 4, dtype="float32").reshape(dates, 2, 3, 4)
    values[0, 0, 0, 0] = np.nan
    return xr.DataArray(values, dims=("t", "bands", "y", "x"),
                        coords={"t": np.array(["2023-05-01", "2023-06-01"][:dates], dtype="datetime64[ns]"),
                                "bands": ["B04", "B08"], "y": ys, "x": xs},
                        attrs={"crs": 32631, "resolution": 10.0})


def test_one_geotiff_per_date_label_named_as_cdse_does(tmp_path: Path) -> None:
    writer = ResultWriter(tmp_path)
    names = writer.save(cube(), "GTiff")
    assert names == ["openEO_2023-05-01Z.tif", "openEO_2023-06-01Z.tif"]
    with rasterio.open(tmp_path / names[0]) as src:
        assert src.crs.to_epsg() == 32631
        assert (src.transform.a, src.transform.e) == (10.0, -10.0)
        assert (src.transform.c, src.transform.f) == (590000.0, 5665000.0)
        assert src.descriptions == ("B04", "B08")
        assert np.isnan(src.nodata)
        data = src.read()
    expected = cube().isel(t=0).values
    assert np.array_equal(data, expected, equal_nan=True)
    asset = writer.assets[names[0]]
    assert asset["proj:epsg"] == 32631 and asset["proj:shape"] == [3, 4]
    assert asset["proj:bbox"] == [590000.0, 5664970.0, 590040.0, 5665000.0]
    assert [b["name"] for b in asset["eo:bands"]] == ["B04", "B08"]
    content = (tmp_path / names[0]).read_bytes()
    assert asset["file:size"] == len(content)
    assert asset["file:checksum"] == "1220" + hashlib.sha256(content).hexdigest()
    assert not list(tmp_path.glob("*.part"))


def test_a_cube_without_time_is_one_openeo_tif_and_integers_keep_their_type(tmp_path: Path) -> None:
    reduced = cube().isel(t=0, drop=True).fillna(0).astype("int16")
    assert ResultWriter(tmp_path).save(reduced, "gtiff") == ["openEO.tif"]
    with rasterio.open(tmp_path / "openEO.tif") as src:
        assert src.dtypes == ("int16", "int16") and src.nodata == -32768


def test_netcdf_holds_the_whole_cube(tmp_path: Path) -> None:
    writer = ResultWriter(tmp_path)
    assert writer.save(cube(), "netCDF") == ["openEO.nc"]
    with xr.open_dataset(tmp_path / "openEO.nc") as dataset:
        assert dataset["data"].dims == ("t", "bands", "y", "x")
        assert list(dataset["bands"].values) == ["B04", "B08"]
        assert np.array_equal(dataset["data"].values, cube().values, equal_nan=True)
    assert writer.assets["openEO.nc"]["type"] == "application/x-netcdf"


def test_unknown_formats_and_extra_dimensions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match="format 'JPEG'"):
        ResultWriter(tmp_path).save(cube(), "JPEG")
    extra = cube().expand_dims(member=["a"])
    with pytest.raises(UnsupportedFormat, match="member"):
        ResultWriter(tmp_path).save(extra.isel(t=0, drop=True), "GTiff")


def test_png_is_an_8_bit_picture_per_date_and_needs_1_3_or_4_bands(tmp_path: Path) -> None:
    grey = cube(1).isel(bands=[0]) * 20.0 - 30.0
    rgb = xr.concat([grey] * 3, dim="bands").assign_coords(bands=["R", "G", "B"])
    writer = ResultWriter(tmp_path)
    assert writer.save(rgb, "png") == ["openEO_2023-05-01Z.png"]
    asset = writer.assets["openEO_2023-05-01Z.png"]
    assert asset["type"] == "image/png" and [b["name"] for b in asset["eo:bands"]] == ["R", "G", "B"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["openEO_2023-05-01Z.png"]  # no sidecar
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning), \
            rasterio.open(tmp_path / "openEO_2023-05-01Z.png") as src:
        assert src.driver == "PNG" and src.count == 3 and src.dtypes[0] == "uint8"
        got = src.read(1)
    expected = np.rint(np.clip(np.nan_to_num(rgb.values[0, 0], nan=0.0), 0, 255))
    np.testing.assert_array_equal(got, expected)  # NaN -> 0, -30 -> 0, 430 -> 255
    with pytest.raises(UnsupportedFormat, match="1 \\(grey\\), 3 \\(RGB\\) or 4"):
        writer.save(cube(1), "PNG")


def test_csv_holds_a_vector_cube_one_row_per_geometry_and_date(tmp_path: Path) -> None:
    values = xr.DataArray(np.arange(8.0).reshape(2, 2, 2), dims=("geometry", "t", "bands"),
                          coords={"geometry": [0, 1], "t": np.array(["2023-05-01", "2023-06-01"],
                                                                      dtype="datetime64[ns]"),
                                  "bands": ["B04", "B08"]})
    vector = VectorCube(geometries=[shapely.box(0, 0, 1, 1), shapely.box(1, 1, 2, 2)], values=values)
    writer = ResultWriter(tmp_path)
    assert writer.save(vector, "CSV") == ["timeseries.csv"]
    assert writer.assets["timeseries.csv"]["type"] == "text/csv"
    lines = (tmp_path / "timeseries.csv").read_text().splitlines()
    assert lines == ["feature_index,date,B04,B08",
                     "0,2023-05-01T00:00:00Z,0.0,1.0", "0,2023-06-01T00:00:00Z,2.0,3.0",
                     "1,2023-05-01T00:00:00Z,4.0,5.0", "1,2023-06-01T00:00:00Z,6.0,7.0"]
    with pytest.raises(UnsupportedFormat, match="CSV holds vector cubes"):
        writer.save(cube(), "CSV")
