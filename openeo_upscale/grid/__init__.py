"""Tiling: an area of interest becomes a grid of square UTM tiles, one openEO batch job each.

`tiles(aoi, size)` is the entry point; `load_aoi` normalises the accepted AOI inputs and
`write_tiles` saves a grid as GeoJSON, GeoPackage, GeoParquet or Shapefile.
"""

from openeo_upscale.errors import GridError
from openeo_upscale.grid.aoi import Aoi, AoiLike, load_aoi
from openeo_upscale.grid.formats import read_vector, write_tiles
from openeo_upscale.grid.tiling import COLUMNS, MAX_SIZE, tile_id, tiles
from openeo_upscale.grid.zones import UTM_NORTH, UTM_SOUTH, utm_epsg, zone_label, zone_number

__all__ = [
    "COLUMNS",
    "MAX_SIZE",
    "UTM_NORTH",
    "UTM_SOUTH",
    "Aoi",
    "AoiLike",
    "GridError",
    "load_aoi",
    "read_vector",
    "tile_id",
    "tiles",
    "utm_epsg",
    "write_tiles",
    "zone_label",
    "zone_number",
]
