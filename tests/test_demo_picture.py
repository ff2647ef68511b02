"""The demo's picture and its cloud measure (`openeo_upscale.demo_picture`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from openeo_upscale.backend.data import sentinel2
from openeo_upscale.demo_picture import CLOUD_OR_SHADOW, cloud_shares, cloudy_scene, side_by_side

EPSG = 32631
BOUNDS = (590000.0, 5660000.0, 593000.0, 5663000.0)
"""3 x 3 km near Antwerp."""


def _write(path: Path, values: np.ndarray, names: list[str]) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[2], height=values.shape[1],
                       count=values.shape[0], dtype="float32", crs=f"EPSG:{EPSG}",
                       transform=Affine(10.0, 0, BOUNDS[0], 0, -10.0, BOUNDS[3])) as ds:
        ds.write(values.astype("float32"))
        for index, name in enumerate(names, start=1):
            ds.set_band_description(index, name)
    return path


def test_a_composite_that_is_the_raw_scene_has_the_scene_s_clouds(tmp_path: Path) -> None:
    """The measure finds, at sample points, the scene a composite pixel came from: given the raw
    scene itself as the 'composite', it finds every point and about the scene's own share."""
    day = cloudy_scene(EPSG, BOUNDS, "2023-06")
    scene = sentinel2.load(EPSG, BOUNDS, [day], ["B04", "B03", "B02", "SCL"], resolution=10).isel(t=0)
    assert scene.shape == (4, 300, 300)
    composite = [_write(tmp_path / f"{band}.tif", scene.sel(bands=[band]).values, [band])
                 for band in ("B04", "B03", "B02")]
    raw = _write(tmp_path / "scene.tif", scene.values, ["B04", "B03", "B02", "SCL"])
    shares = cloud_shares(composite, raw, "2023-06")
    truth = float(np.isin(scene.sel(bands="SCL").values, list(CLOUD_OR_SHADOW)).mean())
    assert shares.scene == truth > 0.02
    assert shares.unidentified == 0.0
    assert abs(shares.composite - truth) < 0.06  # 400 sample points against all 90 000 pixels

    picture = side_by_side(composite, raw, tmp_path / "pair.png")
    with pytest.warns(NotGeoreferencedWarning), rasterio.open(picture) as ds:
        assert ds.count == 3 and ds.width == 2 * 300 + 12 and ds.height == 300
