"""``load_stac`` and ``load_url`` (:mod:`openeo_upscale.backend.engine.cubes_stac`, ``cubes_url``) on
small catalogues and files each test writes: two dates of two single-band COGs and a two-band
GeoTIFF on one UTM grid, two adjacent tiles of one day, a file in lon/lat."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas
import numpy as np
import pystac
import pytest
import rasterio
import rasterio.io
import rasterio.shutil
import shapely.geometry
import xarray as xr
from affine import Affine
from pyproj import Transformer

from openeo_upscale.backend.engine import Evaluator, ProcessGraphError, default_registry
from openeo_upscale.backend.engine.cubes_spatial import VectorCube, bbox_bounds, crop_to_bounds
from openeo_upscale.backend.engine.cubes_url import UrlPolicy
from tests.backend.engine.helpers import node, p

X0, Y0 = 590_000.0, 5_670_000.0
"""Upper-left corner of the test files, in EPSG:32631 (near Antwerp)."""
RES = 10.0
HEIGHT, WIDTH = 300, 400
DAYS = (dt.datetime(2023, 6, 1, 10, 30, tzinfo=dt.UTC), dt.datetime(2023, 6, 11, 10, 30, tzinfo=dt.UTC))
CLOUDS = (5.0, 50.0)


def write_tif(path: Path, data: np.ndarray, *, x0: float = X0, y0: float = Y0, res: float = RES,
              crs: int = 32631, nodata: float | None = 0, cog: bool = True,
              descriptions: tuple[str, ...] = ()) -> Path:
    """A GeoTIFF of `data` (bands, y, x) north up; copied to a COG when `cog`."""
    data = data[None] if data.ndim == 2 else data
    plain = path.with_suffix(".plain.tif") if cog else path
    count, height, width = data.shape
    with rasterio.open(plain, "w", driver="GTiff", width=width, height=height, count=count, dtype=data.dtype,
                       crs=f"EPSG:{crs}", transform=Affine(res, 0, x0, 0, -res, y0), nodata=nodata,
                       tiled=True, blockxsize=128, blockysize=128) as dst:
        dst.write(data)
        for i, text in enumerate(descriptions, start=1):
            dst.set_band_description(i, text)
    if cog:
        rasterio.shutil.copy(plain, path, driver="COG", blocksize=128)
        plain.unlink()
    return path


def lonlat_box(west: float, south: float, east: float, north: float, crs: int = 32631) -> list[float]:
    w, s, e, n = Transformer.from_crs(crs, 4326, always_xy=True).transform_bounds(west, south, east, north)
    return [w, s, e, n]


def footprint(box: list[float]) -> dict[str, Any]:
    return shapely.geometry.mapping(shapely.geometry.box(*box))


def utm_extent(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    return {"west": west, "south": south, "east": east, "north": north, "crs": 32631}


@dataclass
class Catalogue:
    """A collection of two items (one per day of `DAYS`) and the pixels of their files."""

    path: Path
    red: list[np.ndarray]
    nir: list[np.ndarray]
    pair: np.ndarray
    """The two-band asset of the first item only (bands B8A, B11)."""


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    rng = np.random.default_rng(7)
    folder = tmp_path / "stac"
    folder.mkdir()
    red = [rng.integers(1, 5000, (HEIGHT, WIDTH), dtype=np.uint16) for _ in DAYS]
    nir = [rng.integers(1, 5000, (HEIGHT, WIDTH), dtype=np.uint16) for _ in DAYS]
    red[0][:5, :5] = 0  # the files' nodata
    nir[1][:3, :3] = 9999  # nodata of raster:bands only
    pair = rng.integers(1, 5000, (2, HEIGHT, WIDTH), dtype=np.uint16)
    box = lonlat_box(X0, Y0 - HEIGHT * RES, X0 + WIDTH * RES, Y0)
    collection = pystac.Collection("test", "Two days", pystac.Extent(
        pystac.SpatialExtent([box]), pystac.TemporalExtent([[DAYS[0], DAYS[1]]])))
    for i, day in enumerate(DAYS):
        item = pystac.Item(f"item-{i}", footprint(box), box, day, {"eo:cloud_cover": CLOUDS[i]})
        item.add_asset("B04", pystac.Asset(str(write_tif(folder / f"red-{i}.tif", red[i])),
                                           media_type=pystac.MediaType.COG, roles=["data"],
                                           extra_fields={"eo:bands": [{"name": "red"}]}))
        item.add_asset("B08", pystac.Asset(str(write_tif(folder / f"nir-{i}.tif", nir[i], nodata=None)),
                                           media_type=pystac.MediaType.COG, roles=["data"],
                                           extra_fields={"raster:bands": [{"nodata": 9999}]}))
        item.add_asset("thumbnail", pystac.Asset(str(write_tif(folder / f"thumb-{i}.tif", red[i][::10, ::10],
                                                               res=100.0)),
                                                 media_type=pystac.MediaType.GEOTIFF, roles=["thumbnail"]))
        if i == 0:
            item.add_asset("pair", pystac.Asset(str(write_tif(folder / "pair.tif", pair)),
                                                media_type=pystac.MediaType.GEOTIFF, roles=["data"],
                                                extra_fields={"eo:bands": [{"name": "B8A"},
                                                                           {"name": "B11"}]}))
        collection.add_item(item)
    collection.normalize_and_save(str(folder), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return Catalogue(folder / "collection.json", red, nir, pair)


def load(services: dict[str, Any] | None = None, **arguments: Any) -> Any:
    """Evaluate one load_stac node (load_url with ``process="load_url"``)."""
    process = arguments.pop("process", "load_stac")
    graph = {"n": node(process, result=True, **arguments)}
    return Evaluator(default_registry(), services=services).evaluate(graph)


def refusal(**arguments: Any) -> str:
    with pytest.raises(ProcessGraphError) as info:
        load(**arguments)
    return str(info.value)


FULL = utm_extent(X0, Y0 - HEIGHT * RES, X0 + WIDTH * RES, Y0)


# -- the pixels of the files -----------------------------------------------------------------------


def test_load_stac_gives_the_pixels_of_the_files(catalogue: Catalogue) -> None:
    usage: dict[str, Any] = {}
    cube = load({"usage": usage}, url=str(catalogue.path), spatial_extent=FULL, bands=["B04", "B08"])
    assert cube.dims == ("t", "bands", "y", "x") and cube.shape == (2, 2, HEIGHT, WIDTH)
    assert cube.attrs["crs"] == 32631 and cube.attrs["resolution"] == RES and np.isnan(cube.attrs["nodata"])
    assert list(cube["t"].values) == [np.datetime64("2023-06-01", "ns"), np.datetime64("2023-06-11", "ns")]
    assert cube["x"].values[0] == X0 + RES / 2 and cube["y"].values[0] == Y0 - RES / 2
    assert cube.dtype == np.float32 and usage["input_pixels"] == cube.size
    for t in range(2):
        red = catalogue.red[t].astype(np.float32)
        red[red == 0] = np.nan
        nir = catalogue.nir[t].astype(np.float32)
        nir[nir == 9999] = np.nan
        np.testing.assert_array_equal(cube.isel(t=t).sel(bands="B04").values, red)
        np.testing.assert_array_equal(cube.isel(t=t).sel(bands="B08").values, nir)
    assert np.isnan(cube.isel(t=0, bands=0).values[:5, :5]).all()  # the file's nodata
    assert np.isnan(cube.isel(t=1, bands=1).values[:3, :3]).all()  # raster:bands nodata


def test_a_sub_extent_is_read_as_a_window(catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    windows: list[Any] = []
    real_read = rasterio.io.DatasetReader.read

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        windows.append(kwargs.get("window"))
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    extent = utm_extent(X0 + 1000, Y0 - 2500, X0 + 1500, Y0 - 1800)
    cube = load(url=f"file://{catalogue.path}", spatial_extent=extent, bands=["B04"], temporal_extent=None)
    assert cube.shape == (2, 1, 70, 50)
    np.testing.assert_array_equal(cube.isel(t=1, bands=0).values, catalogue.red[1][180:250, 100:150])
    assert len(windows) == 2 and all(w is not None and (w.height, w.width) == (70, 50) for w in windows)


def test_a_lonlat_extent_takes_the_pixels_whose_centre_is_inside(catalogue: Catalogue) -> None:
    extent = dict(zip(("west", "south", "east", "north"),
                      lonlat_box(X0 + 1003, Y0 - 2511, X0 + 1544, Y0 - 1802), strict=True))
    cube = load(url=str(catalogue.path), spatial_extent=extent, bands=["B08"])
    whole = load(url=str(catalogue.path), spatial_extent=FULL, bands=["B08"])
    expected = crop_to_bounds(whole, bbox_bounds(extent, 32631))
    assert cube.sizes["x"] > 50 and cube.sizes["y"] > 70
    xr.testing.assert_identical(cube, expected)


def test_a_geojson_extent_sets_pixels_outside_to_nodata(catalogue: Catalogue) -> None:
    w, s, e, n = lonlat_box(X0 + 1000, Y0 - 2000, X0 + 2000, Y0 - 1000)
    triangle = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [w, n], [w, s]]]}
    cube = load(url=str(catalogue.path), spatial_extent=triangle, bands=["B04"])
    values = cube.isel(t=0, bands=0).values
    assert 0.3 < np.isnan(values).mean() < 0.7
    assert np.isfinite(values[-5, 5]) and np.isnan(values[5, -5])  # near the right angle, and opposite


def test_a_null_extent_loads_every_item(catalogue: Catalogue) -> None:
    cube = load(url=str(catalogue.path), bands=["B08"])
    assert cube.sizes["t"] == 2 and cube.attrs["crs"] == 32631
    # The items' lon/lat bboxes cover a little more than the files: NaN around them.
    inside = cube.sel(x=slice(X0, X0 + WIDTH * RES), y=slice(Y0, Y0 - HEIGHT * RES))
    np.testing.assert_array_equal(inside.isel(t=0, bands=0).values, catalogue.nir[0])


# -- filters ---------------------------------------------------------------------------------------


def test_temporal_extent_keeps_the_items_of_the_period_end_excluded(catalogue: Catalogue) -> None:
    cube = load(url=str(catalogue.path), spatial_extent=FULL, bands=["B04"],
                temporal_extent=["2023-06-01", "2023-06-11"])
    assert list(cube["t"].values) == [np.datetime64("2023-06-01", "ns")]
    later = load(url=str(catalogue.path), spatial_extent=FULL, bands=["B04"],
                 temporal_extent=["2023-06-02", None])
    assert list(later["t"].values) == [np.datetime64("2023-06-11", "ns")]


def test_properties_callbacks_filter_the_items(catalogue: Catalogue) -> None:
    clear = {"process_graph": {"c": node("lte", x=p("value"), y=10, result=True)}}
    cube = load(url=str(catalogue.path), spatial_extent=FULL, bands=["B04"],
                properties={"eo:cloud_cover": clear})
    assert list(cube["t"].values) == [np.datetime64("2023-06-01", "ns")]


def test_bands_by_asset_key_or_band_name_in_the_order_asked(catalogue: Catalogue) -> None:
    cube = load(url=str(catalogue.path), spatial_extent=FULL, bands=["B11", "red"])
    assert list(cube["bands"].values) == ["B11", "red"]
    np.testing.assert_array_equal(cube.isel(t=0).sel(bands="B11").values, catalogue.pair[1])
    assert np.isnan(cube.isel(t=1).sel(bands="B11").values).all()  # the second item has no B11
    np.testing.assert_array_equal(cube.isel(t=1).sel(bands="red").values, catalogue.red[1])


def test_without_bands_every_data_asset_is_loaded(catalogue: Catalogue) -> None:
    cube = load(url=str(catalogue.path), spatial_extent=FULL)
    assert list(cube["bands"].values) == ["B04", "B08", "B8A", "B11"]


def test_an_item_file_is_a_catalogue_of_one_item(catalogue: Catalogue) -> None:
    item = catalogue.path.parent / "item-1" / "item-1.json"
    cube = load(url=str(item), spatial_extent=FULL, bands=["B04"])
    assert cube.sizes["t"] == 1
    np.testing.assert_array_equal(cube.isel(t=0, bands=0).values, catalogue.red[1])


# -- mosaics and reprojection ----------------------------------------------------------------------


def test_tiles_of_one_day_are_mosaicked(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    tiles = [rng.integers(1, 100, (100, 100), dtype=np.uint8) for _ in range(2)]
    catalog = pystac.Catalog("tiles", "Two tiles of one day")
    for i, tile in enumerate(tiles):
        x0 = X0 + i * 1000
        box = lonlat_box(x0, Y0 - 1000, x0 + 1000, Y0)
        day = dt.datetime(2023, 6, 1, 10, 30, 5 * i, tzinfo=dt.UTC)
        item = pystac.Item(f"tile-{i}", footprint(box), box, day, {})
        item.add_asset("B04", pystac.Asset(str(write_tif(tmp_path / f"tile-{i}.tif", tile, x0=x0)),
                                           media_type=pystac.MediaType.COG))
        catalog.add_item(item)
    catalog.normalize_and_save(str(tmp_path / "tiles"), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    cube = load(url=str(tmp_path / "tiles" / "catalog.json"),
                spatial_extent=utm_extent(X0, Y0 - 1000, X0 + 2000, Y0))
    assert cube.shape == (1, 1, 100, 200)
    np.testing.assert_array_equal(cube.isel(t=0, bands=0).values, np.hstack(tiles).astype(np.float32))


def test_a_file_in_another_crs_is_reprojected_nearest(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    data = rng.integers(1, 250, (200, 300), dtype=np.uint8)
    lon0, lat0, step = 4.30, 51.20, 0.0002  # about 14 x 22 m pixels
    path = write_tif(tmp_path / "lonlat.tif", data, x0=lon0, y0=lat0, res=step, crs=4326)
    box = [lon0, lat0 - 200 * step, lon0 + 300 * step, lat0]
    item = pystac.Item("lonlat", footprint(box), box, DAYS[0], {})
    item.add_asset("B04", pystac.Asset(str(path), media_type=pystac.MediaType.GEOTIFF))
    item.set_self_href(str(tmp_path / "item.json"))
    item.save_object()
    extent = {"west": 4.31, "south": 51.17, "east": 4.35, "north": 51.19}
    cube = load(url=str(tmp_path / "item.json"), spatial_extent=extent)
    assert cube.attrs["crs"] == 32631 and 10 < cube.attrs["resolution"] < 20
    xs, ys = np.meshgrid(cube["x"].values, cube["y"].values)
    lon, lat = Transformer.from_crs(32631, 4326, always_xy=True).transform(xs, ys)
    expected = data[np.floor((lat0 - lat) / step).astype(int), np.floor((lon - lon0) / step).astype(int)]
    # GDAL's warper approximates the transformation: a pixel centre on a source edge may flip.
    assert (cube.isel(t=0, bands=0).values == expected).mean() > 0.99


# -- refusals --------------------------------------------------------------------------------------


def test_a_remote_url_is_refused_without_fetching_it() -> None:
    # The network is blocked beyond loopback: a fetch would fail otherwise, not with this message.
    message = refusal(url="https://stac.example.org/collections/MDVI", bands=["dvi_max"])
    assert "remote URL 'https://stac.example.org/collections/MDVI' not fetched" in message
    assert "runs offline" in message and "allow_remote_namespaces" in message


@pytest.mark.parametrize(("url", "expected"), [
    ("relative/catalog.json", "relative path"),
    ("s3://bucket/catalog.json", "scheme 's3' is not supported"),
    ("file://otherhost/data/catalog.json", "another host"),
    ("", "non-empty string"),
])
def test_urls_that_are_not_local_files_are_refused(url: str, expected: str) -> None:
    assert expected in refusal(url=url)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    assert f"no file at '{tmp_path / 'nothing.json'}'" in refusal(url=str(tmp_path / "nothing.json"))


def test_the_backends_own_folders_are_refused(tmp_path: Path, catalogue: Catalogue) -> None:
    services = {"url_policy": {"private_dirs": [str(catalogue.path.parent)]}}
    with pytest.raises(ProcessGraphError, match="inside the backend's own folders"):
        load(services, url=str(catalogue.path))
    sneaky = tmp_path / "elsewhere" / ".." / "stac" / "collection.json"
    with pytest.raises(ProcessGraphError, match="inside the backend's own folders"):
        load(services, url=str(sneaky))


def test_a_file_that_is_not_stac_is_refused(tmp_path: Path) -> None:
    (tmp_path / "not.json").write_text('{"hello": "world"}')
    assert "is not a readable STAC catalogue" in refusal(url=str(tmp_path / "not.json"))


def test_no_matching_items_is_refused(catalogue: Catalogue) -> None:
    message = refusal(url=str(catalogue.path), spatial_extent=FULL,
                      temporal_extent=["2024-01-01", "2024-02-01"])
    assert "no items of" in message
    far = {"west": 10.0, "south": 45.0, "east": 10.01, "north": 45.01}
    assert "no items of" in refusal(url=str(catalogue.path), spatial_extent=far)


def test_a_band_not_in_the_assets_is_refused(catalogue: Catalogue) -> None:
    message = refusal(url=str(catalogue.path), spatial_extent=FULL, bands=["B04", "SCL"])
    assert "band 'SCL' is not among the assets" in message and "B08" in message


def test_an_unreadable_or_missing_asset_is_refused(catalogue: Catalogue) -> None:
    (catalogue.path.parent / "red-1.tif").write_text("not a tiff")
    message = refusal(url=str(catalogue.path), spatial_extent=FULL, bands=["B04"])
    assert "asset 'B04' of item 'item-1'" in message and "as a GeoTIFF" in message
    (catalogue.path.parent / "red-1.tif").unlink()
    message = refusal(url=str(catalogue.path), spatial_extent=FULL, bands=["B04"])
    assert "asset 'B04' of item 'item-1': no file at" in message


def test_an_asset_that_is_a_vrt_is_refused_whatever_its_name(catalogue: Catalogue) -> None:
    # A VRT could make GDAL read files the URL policy refuses (another job's results, say).
    red = catalogue.path.parent / "red-1.tif"
    vrt = red.with_name("red-1.vrt")
    rasterio.shutil.copy(catalogue.path.parent / "red-0.tif", vrt, driver="VRT")
    vrt.replace(red)
    message = refusal(url=str(catalogue.path), spatial_extent=FULL, bands=["B04"])
    assert "asset 'B04' of item 'item-1'" in message and "as a GeoTIFF" in message


def test_links_of_a_local_catalogue_follow_the_policy(tmp_path: Path) -> None:
    catalog = pystac.Catalog("mixed", "A local catalogue linking a remote item")
    catalog.add_link(pystac.Link("item", "https://stac.example.org/items/x.json", "application/geo+json"))
    catalog.set_self_href(str(tmp_path / "catalog.json"))
    catalog.save_object(include_self_link=False)
    assert "remote URL 'https://stac.example.org/items/x.json' not fetched" in refusal(
        url=str(tmp_path / "catalog.json"))


# -- remote URLs when allowed ----------------------------------------------------------------------


@pytest.fixture
def served(catalogue: Catalogue) -> Iterator[str]:
    """The catalogue's folder over http on loopback, its assets as file:// URLs (a path in a remote
    document is a path on its server, and this little server does not answer range requests)."""
    for path in catalogue.path.parent.glob("item-*/item-*.json"):
        item = json.loads(path.read_text())
        for asset in item["assets"].values():
            asset["href"] = (path.parent / asset["href"]).resolve().as_uri()
        path.write_text(json.dumps(item))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(catalogue.path.parent))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}/collection.json"
        server.shutdown()


def test_a_remote_catalogue_is_read_when_allowed(served: str, catalogue: Catalogue) -> None:
    assert "not fetched" in refusal(url=served)
    services = {"url_policy": UrlPolicy(allow_remote=True, timeout=5.0)}
    cube = load(services, url=served, spatial_extent=FULL, bands=["B08"])
    np.testing.assert_array_equal(cube.isel(t=0, bands=0).values, catalogue.nir[0])


# -- load_url --------------------------------------------------------------------------------------


def test_load_url_geotiff_is_a_cube_without_time(tmp_path: Path) -> None:
    data = np.arange(2 * 20 * 30, dtype=np.int16).reshape(2, 20, 30)
    path = write_tif(tmp_path / "two.tif", data, nodata=-1, cog=False, descriptions=("NDVI", ""))
    cube = load(process="load_url", url=str(path), format="GTiff")
    assert cube.dims == ("bands", "y", "x") and list(cube["bands"].values) == ["NDVI", "band_2"]
    assert cube.attrs["crs"] == 32631 and cube.attrs["resolution"] == RES
    np.testing.assert_array_equal(cube.values, data.astype(np.float32))
    assert load(process="load_url", url=f"file://{path}", format="geotiff").shape == (2, 20, 30)


def test_load_url_geojson_and_parquet_are_vector_cubes(tmp_path: Path) -> None:
    boxes = [shapely.geometry.box(X0 + 100, Y0 - 600, X0 + 600, Y0 - 100),
             shapely.geometry.box(X0 + 1000, Y0 - 1500, X0 + 1200, Y0 - 1000)]
    frame = geopandas.GeoDataFrame({"name": ["a", "b"]}, geometry=boxes, crs=32631)
    frame.to_crs(4326).to_file(tmp_path / "fields.geojson", driver="GeoJSON")
    frame.to_parquet(tmp_path / "fields.parquet")
    fields = load(process="load_url", url=str(tmp_path / "fields.geojson"), format="GeoJSON")
    assert isinstance(fields, VectorCube) and fields.crs == 4326 and len(fields.geometries) == 2
    assert shapely.equals_exact(fields.in_crs(32631)[0], boxes[0], tolerance=1e-3)
    stored = load(process="load_url", url=str(tmp_path / "fields.parquet"), format="geoparquet")
    assert stored.crs == 32631
    assert all(g.equals(b) for g, b in zip(stored.geometries, boxes, strict=True))


def test_load_url_geometries_feed_aggregate_spatial(tmp_path: Path, catalogue: Catalogue) -> None:
    boxes = [shapely.geometry.box(X0 + 100, Y0 - 600, X0 + 600, Y0 - 100),
             shapely.geometry.box(X0 + 1000, Y0 - 1500, X0 + 1200, Y0 - 1000)]
    geopandas.GeoDataFrame(geometry=boxes, crs=32631).to_crs(4326).to_file(tmp_path / "f.geojson")
    graph = {
        "fields": node("load_url", url=str(tmp_path / "f.geojson"), format="geojson"),
        "cube": node("load_stac", url=str(catalogue.path), spatial_extent=FULL, bands=["B08"],
                     temporal_extent=["2023-06-01", "2023-06-02"]),
        "mean": node("aggregate_spatial", result=True, data={"from_node": "cube"},
                     geometries={"from_node": "fields"},
                     reducer={"process_graph": {"m": node("mean", data=p("data"), result=True)}}),
    }
    out = Evaluator(default_registry()).evaluate(graph)
    nir = catalogue.nir[0].astype(np.float64)
    expected = [nir[10:60, 10:60].mean(), nir[100:150, 100:120].mean()]
    np.testing.assert_allclose(out.values.values.ravel(), expected, rtol=1e-6)


def test_load_url_refusals(tmp_path: Path) -> None:
    (tmp_path / "bad.geojson").write_text("{not json")
    assert "format 'CSV' is not supported" in refusal(process="load_url", url=str(tmp_path / "x.csv"),
                                                      format="CSV")
    assert "cannot read" in refusal(process="load_url", url=str(tmp_path / "bad.geojson"), format="GeoJSON")
    (tmp_path / "text.tif").write_text("not a tiff")
    assert "load_url: cannot read the file" in refusal(process="load_url", url=str(tmp_path / "text.tif"),
                                                       format="GTiff")
    (tmp_path / "list.geojson").write_text("[1, 2]")
    assert "not a GeoJSON object" in refusal(process="load_url", url=str(tmp_path / "list.geojson"),
                                             format="GeoJSON")
    assert "not fetched: this backend runs offline" in refusal(
        process="load_url", url="https://example.org/forests.parquet", format="Parquet")
    assert "relative path" in refusal(process="load_url", url="forests.parquet", format="Parquet")
