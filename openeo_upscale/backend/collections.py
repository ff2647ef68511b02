"""Collection metadata served by the local backend (STAC collections with datacube fields)."""

from __future__ import annotations

from typing import Any

S2_BANDS: list[dict[str, Any]] = [
    {"name": "B01", "common_name": "coastal", "center_wavelength": 0.443, "gsd": 60},
    {"name": "B02", "common_name": "blue", "center_wavelength": 0.490, "gsd": 10},
    {"name": "B03", "common_name": "green", "center_wavelength": 0.560, "gsd": 10},
    {"name": "B04", "common_name": "red", "center_wavelength": 0.665, "gsd": 10},
    {"name": "B05", "common_name": "rededge", "center_wavelength": 0.705, "gsd": 20},
    {"name": "B06", "common_name": "rededge", "center_wavelength": 0.740, "gsd": 20},
    {"name": "B07", "common_name": "rededge", "center_wavelength": 0.783, "gsd": 20},
    {"name": "B08", "common_name": "nir", "center_wavelength": 0.842, "gsd": 10},
    {"name": "B8A", "common_name": "nir08", "center_wavelength": 0.865, "gsd": 20},
    {"name": "B09", "common_name": "nir09", "center_wavelength": 0.945, "gsd": 60},
    {"name": "B11", "common_name": "swir16", "center_wavelength": 1.610, "gsd": 20},
    {"name": "B12", "common_name": "swir22", "center_wavelength": 2.190, "gsd": 20},
    {
        "name": "SCL",
        "description": "Scene classification map (Sen2Cor classes)",
        "gsd": 20,
        "classification:classes": [
            {"value": 0, "name": "no_data", "nodata": True,
             "description": "No data (not produced by the synthetic generator)"},
            {"value": 1, "name": "saturated_or_defective",
             "description": "Saturated or defective (not produced by the synthetic generator)"},
            {"value": 2, "name": "dark_area_pixels",
             "description": "Dark area pixels (not produced by the synthetic generator)"},
            {"value": 3, "name": "cloud_shadows",
             "description": "Cloud shadows: where the cloud mask (8, 9, 10) lies 0.5-1.2 km towards the sun"},
            {"value": 4, "name": "vegetation", "description": "Vegetation: land with NDVI above ~0.5"},
            {"value": 5, "name": "not_vegetated",
             "description": "Not vegetated: bare soil, bare and harvested crop parcels, towns and roads"},
            {"value": 6, "name": "water",
             "description": "Water: lakes and rivers (WorldCover 80), dark in NIR"},
            {"value": 7, "name": "unclassified",
             "description": "Unclassified (not produced by the synthetic generator)"},
            {"value": 8, "name": "cloud_medium_probability",
             "description": "Cloud, medium probability: the thinner 40 % of a scene's clouds"},
            {"value": 9, "name": "cloud_high_probability",
             "description": "Cloud, high probability: the densest 60 % of a scene's clouds"},
            {"value": 10, "name": "thin_cirrus",
             "description": "Thin cirrus: semi-transparent parts of the medium-probability clouds"},
            {"value": 11, "name": "snow",
             "description": "Snow: some cold-season scenes, bright, dark in SWIR"},
        ],
    },
    {"name": "sunAzimuthAngles",
     "description": "Sun azimuth in degrees (synthetic: about 150, 30 south of the equator)", "gsd": 20},
    {"name": "sunZenithAngles", "description": "Sun zenith in degrees (synthetic: |latitude - solar "
     "declination| + 8)", "gsd": 20},
    {"name": "viewAzimuthMean", "description": "Mean view azimuth in degrees (synthetic: 103 east of the "
     "track, 283 west of it)", "gsd": 20},
    {"name": "viewZenithMean", "description": "Mean view zenith in degrees (synthetic: 0.5-12 across the "
     "290 km swath)", "gsd": 20},
]

PROVIDERS = [{"name": "openeo-upscale", "roles": ["producer", "host"]}]
GLOBAL_BBOX = [-180.0, -80.0, 180.0, 84.0]
"""Where the synthetic collections have data: everywhere UTM is defined."""

_UTM_XY: dict[str, Any] = {
    axis: {
        "type": "spatial",
        "axis": axis,
        "extent": extent,
        "step": 10,
        "reference_system": {"name": "UTM zone of the area"},
    }
    for axis, extent in (("x", [-180.0, 180.0]), ("y", [-80.0, 84.0]))
}
"""The spatial dimensions of every synthetic collection: 10 m pixels in the area's UTM zone."""

_SENTINEL2_L2A: dict[str, Any] = {
    "stac_version": "1.0.0",
    "type": "Collection",
    "id": "SENTINEL2_L2A",
    "title": "Sentinel-2 L2A (synthetic)",
    "description": (
        "Synthetic Sentinel-2 Level-2A surface reflectance, generated on the fly by "
        "`openeo_upscale.backend.data.sentinel2` (no files, no network) from the synthetic land "
        "cover of `openeo_upscale.backend.data.landscape` (served as ESA_WORLDCOVER_10M_2021_V2). "
        "The land cover, clouds and snow are functions of geographic place and date, so a scene is "
        "seamless across tiles and across UTM zone edges; within a zone values are a pure function "
        "of (absolute pixel index at the band's native resolution, date, band), so adjacent tiles "
        "agree pixel for pixel and reruns are bit-identical. Data load in the UTM zone of the "
        "area.\n\n"
        "- **Bands**: B01-B12 without B10, B8A and SCL at their native 10/20/60 m; reflectances "
        "are integer DN in 1-10000 (float32), 0 is nodata. Loading at another resolution takes, "
        "for each output pixel, the native pixel containing its centre (nearest neighbour).\n"
        "- **Revisit**: a scene every 5 days, on the days k * 5 after 2015-06-23, from "
        "2017-03-29 on; the same days in every zone.\n"
        "- **Land**: a Belgian-looking landscape: irregular field parcels (Voronoi cells of a few "
        "hundred metres, oriented per farm block) of cropland and grassland, smooth-edged forests "
        "and woodlots, towns and villages denser at their centre with roads between them, "
        "meandering rivers and lakes; over 20 km around Antwerp about 38 % cropland, 31 % "
        "grassland, 14 % tree cover, 13 % built-up, 2.5 % water. Each crop has its calendar "
        "(winter wheat and barley sown in autumn, harvested in July; maize May-October; sugar beet "
        "April-October; potato April-August; +/-10 days per parcel); grassland, forest and wetland "
        "are greenest in July (January south of the equator). Water is dark in NIR, towns bright "
        "grey, roads dark grey.\n"
        "- **Clouds**: each scene has an `eo:cloud_cover` (a quarter of the scenes under 5 %, 45 % "
        "over 50 %), the same in every zone on a day. A cumulus field of position (features of "
        "0.2-1.5 km, new every scene) is thresholded at its own quantile, so the expected share of "
        "cloudy pixels (SCL 8, 9, 10) equals the scene's cloud cover; over a 20 km square it is "
        "within a few percent, a 5 km tile strays more. Clouds are bright in all bands; their "
        "shadows (SCL 3) are dark and offset 0.5-1.2 km away from the sun.\n"
        "- **SCL**: 3 cloud shadows, 4 vegetation, 5 not vegetated, 6 water (exactly where the "
        "WorldCover map is 80), 8/9 cloud medium/high "
        "probability, 10 thin cirrus, 11 snow (cold season only); 0, 1, 2 and 7 never occur."
    ),
    "license": "proprietary",
    "keywords": ["sentinel-2", "synthetic", "l2a"],
    "providers": PROVIDERS,
    "extent": {
        "spatial": {"bbox": [GLOBAL_BBOX]},
        "temporal": {"interval": [["2017-03-28T00:00:00Z", None]]},
    },
    "links": [],
    "cube:dimensions": {
        **_UTM_XY,
        "t": {"type": "temporal", "extent": ["2017-03-28T00:00:00Z", None], "step": "P5D"},
        "bands": {"type": "bands", "values": [b["name"] for b in S2_BANDS]},
    },
    "summaries": {
        "eo:bands": S2_BANDS,
        "eo:cloud_cover": {"minimum": 0, "maximum": 100},
        "gsd": [10, 20, 60],
        "platform": ["sentinel-2a", "sentinel-2b"],
        "constellation": ["sentinel-2"],
    },
}

WORLDCOVER_CLASSES: list[dict[str, Any]] = [
    {"value": 0, "name": "no_data", "nodata": True, "description": "No data (never produced)"},
    {"value": 10, "name": "tree_cover", "color_hint": "006400",
     "description": "Tree cover: forests and woodlot parcels"},
    {"value": 20, "name": "shrubland", "color_hint": "FFBB22",
     "description": "Shrubland (not produced by the synthetic land cover)"},
    {"value": 30, "name": "grassland", "color_hint": "FFFF4C", "description": "Grassland parcels"},
    {"value": 40, "name": "cropland", "color_hint": "F096FF",
     "description": "Cropland: parcels of winter wheat, winter barley, maize, sugar beet and potato, "
                    "each with its own sowing and harvest days in Sentinel-2"},
    {"value": 50, "name": "built_up", "color_hint": "FA0000",
     "description": "Built-up: towns, villages and the roads between them"},
    {"value": 60, "name": "bare_sparse_vegetation", "color_hint": "B4B4B4",
     "description": "Bare / sparse vegetation: the bare-soil parcels"},
    {"value": 70, "name": "snow_and_ice", "color_hint": "F0F0F0",
     "description": "Snow and ice (not produced by the synthetic land cover)"},
    {"value": 80, "name": "permanent_water_bodies", "color_hint": "0064C8",
     "description": "Permanent water bodies: lakes and rivers, SCL 6 in clear Sentinel-2 pixels"},
    {"value": 90, "name": "herbaceous_wetland", "color_hint": "0096A0",
     "description": "Herbaceous wetland: field parcels along rivers"},
    {"value": 95, "name": "mangroves", "color_hint": "00CF75",
     "description": "Mangroves (not produced by the synthetic land cover)"},
    {"value": 100, "name": "moss_and_lichen", "color_hint": "FAE6A0",
     "description": "Moss and lichen (not produced by the synthetic land cover)"},
]
"""The ESA WorldCover classes; the synthetic map produces 10, 30, 40, 50, 60, 80 and 90."""

_WORLDCOVER_BANDS: list[dict[str, Any]] = [
    {"name": "MAP", "description": "ESA WorldCover class code (uint8 values, as float32)", "gsd": 10,
     "classification:classes": WORLDCOVER_CLASSES},
]

_ESA_WORLDCOVER: dict[str, Any] = {
    "stac_version": "1.0.0",
    "type": "Collection",
    "id": "ESA_WORLDCOVER_10M_2021_V2",
    "title": "ESA WorldCover 10 m 2021 v200 (synthetic)",
    "description": (
        "Synthetic land cover with the ESA WorldCover class codes, generated on the fly by "
        "`openeo_upscale.backend.data.worldcover` from `openeo_upscale.backend.data.landscape` (no "
        "files, no network). It is the land cover the synthetic `SENTINEL2_L2A` and `SENTINEL1_GRD` "
        "are computed from, so they agree: where the map says 80 (water), a Sentinel-2 pixel without "
        "cloud, shadow or snow has SCL 6. The map is a function of geographic place, so the same "
        "place has the same class in the grids of neighbouring UTM zones; within a zone values are a "
        "pure function of the absolute pixel index, so adjacent tiles agree pixel for pixel and "
        "reruns are bit-identical. Data load in the UTM zone of the area.\n\n"
        "- **Band** `MAP`: the class code at 10 m (float32 holding uint8 values, 0 is nodata and "
        "never produced). The land model has 20 m pixels: each 10 m pixel takes the class of the "
        "one containing its centre; loading at another resolution takes the nearest 10 m pixel.\n"
        "- **Time**: one layer, 2021-01-01.\n"
        "- **Classes**: 10 tree cover (forests, woodlots), 30 grassland, 40 cropland (irregular "
        "parcels of a few hundred metres, five crop types), 50 built-up (towns, villages and the "
        "roads between them), 60 bare / sparse vegetation (a few bare parcels), 80 permanent water "
        "bodies (rivers, lakes), 90 herbaceous wetland (parcels along rivers); over 20 km around "
        "Antwerp about 38 / 31 / 14 / 13 / 2.5 / 0.6 / 0.5 % (cropland, grassland, tree cover, "
        "built-up, water, bare, wetland). Shrubland (20), snow and ice (70), mangroves (95) and "
        "moss and lichen (100) never occur."
    ),
    "license": "CC-BY-4.0",
    "keywords": ["esa", "worldcover", "land cover", "synthetic"],
    "providers": PROVIDERS,
    "extent": {
        "spatial": {"bbox": [GLOBAL_BBOX]},
        "temporal": {"interval": [["2021-01-01T00:00:00Z", "2021-12-31T23:59:59Z"]]},
    },
    "links": [],
    "cube:dimensions": {
        **_UTM_XY,
        "t": {
            "type": "temporal",
            "extent": ["2021-01-01T00:00:00Z", "2021-01-01T00:00:00Z"],
            "values": ["2021-01-01T00:00:00Z"],
        },
        "bands": {"type": "bands", "values": [b["name"] for b in _WORLDCOVER_BANDS]},
    },
    "summaries": {
        "eo:bands": _WORLDCOVER_BANDS,
        "classification:classes": WORLDCOVER_CLASSES,
        "gsd": [10],
        "platform": ["sentinel-1", "sentinel-2"],
    },
}

S1_BANDS: list[dict[str, Any]] = [
    {"name": "VV", "description": "Backscatter, vertical transmit / vertical receive (linear power)",
     "sar:polarizations": ["VV"], "sar:frequency_band": "C", "sar:center_frequency": 5.405, "gsd": 10},
    {"name": "VH", "description": "Backscatter, vertical transmit / horizontal receive (linear power)",
     "sar:polarizations": ["VH"], "sar:frequency_band": "C", "sar:center_frequency": 5.405, "gsd": 10},
]
"""The bands of the synthetic GRD: dual-polarisation IW (no HH or HV)."""

_SENTINEL1_GRD: dict[str, Any] = {
    "stac_version": "1.0.0",
    "stac_extensions": ["https://stac-extensions.github.io/sar/v1.0.0/schema.json",
                        "https://stac-extensions.github.io/sat/v1.0.0/schema.json"],
    "type": "Collection",
    "id": "SENTINEL1_GRD",
    "title": "Sentinel-1 GRD (synthetic)",
    "description": (
        "Synthetic Sentinel-1 Ground Range Detected backscatter (IW, VV + VH), generated on the fly by "
        "`openeo_upscale.backend.data.sentinel1` from the land cover of `ESA_WORLDCOVER_10M_2021_V2` "
        "(no files, no network). Values are a pure function of (UTM zone, absolute 10 m pixel, date, "
        "band), so adjacent tiles agree pixel for pixel and reruns are bit-identical. Data load in the "
        "UTM zone of the area.\n\n"
        "- **Values**: sigma0 on the ellipsoid in linear power (float32), what `sar_backscatter` gives "
        "with `coefficient=\"sigma0-ellipsoid\"`; `sar_backscatter` converts to gamma0 "
        "(sigma0 / cos theta) or beta0 (sigma0 / sin theta) on the flat synthetic terrain. 0 is nodata.\n"
        "- **Orbits**: one ascending and one descending track per zone, each passed every 6 days by "
        "Sentinel-1A and -1B together (a scene every 3 days), every 12 days by Sentinel-1A alone after "
        "2021-12-22; scenes carry `sat:orbit_state`, `sat:relative_orbit`, `platform`, "
        "`sar:instrument_mode` (IW) and `sar:polarizations`, so `load_collection` can filter on them. "
        "The incidence angle runs from 30 to 46 degrees across a 250 km swath.\n"
        "- **Surface**: by land-cover class: water very dark (VV about -20 dB) and changing with the "
        "wind, towns bright (VV about -3 dB), forest -7 / -12 dB (VV / VH), grassland and crops "
        "following the season and the crops' growth, soils brighter after rain.\n"
        "- **Speckle**: gamma distributed, 4.4 looks, per pixel, date and band."
    ),
    "license": "proprietary",
    "keywords": ["sentinel-1", "synthetic", "sar", "grd", "backscatter"],
    "providers": PROVIDERS,
    "extent": {
        "spatial": {"bbox": [GLOBAL_BBOX]},
        "temporal": {"interval": [["2016-09-26T00:00:00Z", None]]},
    },
    "links": [],
    "cube:dimensions": {
        **_UTM_XY,
        "t": {"type": "temporal", "extent": ["2016-09-26T00:00:00Z", None], "step": None},
        "bands": {"type": "bands", "values": [b["name"] for b in S1_BANDS]},
    },
    "summaries": {
        "sar:bands": S1_BANDS,
        "sar:instrument_mode": ["IW"],
        "sar:frequency_band": ["C"],
        "sar:center_frequency": [5.405],
        "sar:polarizations": ["VV", "VH"],
        "sar:product_type": ["GRD"],
        "sat:orbit_state": ["ascending", "descending"],
        "sat:relative_orbit": {"minimum": 1, "maximum": 175},
        "gsd": [10],
        "platform": ["sentinel-1a", "sentinel-1b"],
        "constellation": ["sentinel-1"],
    },
}

COLLECTIONS: dict[str, dict[str, Any]] = {
    "SENTINEL2_L2A": _SENTINEL2_L2A,
    "ESA_WORLDCOVER_10M_2021_V2": _ESA_WORLDCOVER,
    "SENTINEL1_GRD": _SENTINEL1_GRD,
}


def collection_links(collection: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A copy of `collection` with self/root/parent links pointing at this server."""
    out = dict(collection)
    cid = collection["id"]
    out["links"] = [
        {"rel": "self", "href": f"{base_url}/collections/{cid}", "type": "application/json"},
        {"rel": "root", "href": f"{base_url}/", "type": "application/json"},
        {"rel": "parent", "href": f"{base_url}/collections", "type": "application/json"},
    ]
    return out
