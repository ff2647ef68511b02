"""Full descriptions of some processes in `/processes`: summary, description, what they return
and their parameters' descriptions, schemas and defaults.

Written for this backend after the official openEO process specifications (and, for the
VITO / Copernicus Data Space extension ``to_scl_dilation_mask``, its published specification
with Copernicus Data Space's defaults); :mod:`.processes` merges them into its generated
listing. Imports nothing of ours.
"""

from __future__ import annotations

from typing import Any

_RASTER = {"type": "object", "subtype": "datacube"}
_POLYGONS = [{"type": "object", "subtype": "geojson"}, {"type": "object", "subtype": "datacube",
                                                         "description": "A vector data cube."}]
_NUMBERS = {"type": "array", "items": {"type": ["number", "null"]}}
_SCL_CLASSES = {"type": "array", "items": {"type": "integer"}}
_KERNEL_SIZE = {"type": "integer", "minimum": 0}

DETAILS: dict[str, dict[str, Any]] = {
    "quantiles": {
        "summary": "Quantiles",
        "description": "Sample quantiles of an array of numbers, for the given probabilities or for `q` "
                       "equal intervals, computed as type 7 of Hyndman and Fan (linear interpolation between "
                       "order statistics). An empty array, or one without valid values, gives one null per "
                       "probability.",
        "returns": "An array with one quantile per probability (or `q` - 1 quantiles).",
        "parameters": {
            "data": {"description": "An array of numbers.", "schema": _NUMBERS},
            "probabilities": {
                "description": "Probabilities between 0 and 1 in ascending order, or the number of equal "
                               "intervals to compute quantiles for.",
                "schema": [{"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
                           {"type": "integer", "minimum": 2}],
            },
            "q": {"description": "Deprecated: the number of equal intervals; use `probabilities`.",
                  "schema": {"type": "integer", "minimum": 2}},
            "ignore_nodata": {
                "description": "Ignore no-data values (the default); if false, any no-data value makes "
                               "every quantile null.",
                "schema": {"type": "boolean"}, "default": True,
            },
        },
    },
    "text_concat": {
        "summary": "Concatenate elements to a single text",
        "description": "Joins the elements of an array into one text, with `separator` between them. "
                       "Numbers are written as numbers, booleans as `true` / `false`, null as `null`.",
        "returns": "The concatenated text.",
        "parameters": {
            "data": {"description": "Texts, numbers, booleans and nulls.",
                     "schema": {"type": "array", "items": {"type": ["string", "number", "boolean", "null"]}}},
            "separator": {"description": "What goes between two elements; empty by default.",
                          "schema": {"type": ["string", "number", "boolean", "null"]}, "default": ""},
        },
    },
    "array_interpolate_linear": {
        "summary": "One-dimensional linear interpolation for arrays",
        "description": "Replaces every no-data value that has a valid value before and after it by linear "
                       "interpolation between those two, by their labels when the labels are dates or "
                       "numbers, else by their indices. Leading and trailing no-data values stay; an array "
                       "with fewer than two valid values is returned unchanged.",
        "returns": "The array with its interior no-data values interpolated.",
        "parameters": {
            "data": {"description": "An array of numbers and no-data values; a labelled array must be sorted "
                                    "by its labels (as temporal and spatial dimensions are).",
                     "schema": _NUMBERS},
        },
    },
    "mask_polygon": {
        "summary": "Apply a polygon mask",
        "description": "Replaces the pixels of a raster data cube whose centre lies outside all polygons "
                       "(with `inside`: inside any polygon) by `replacement`. Dimensions and their labels "
                       "stay unchanged.",
        "returns": "The masked raster data cube.",
        "parameters": {
            "data": {"description": "A raster data cube.", "schema": _RASTER},
            "mask": {"description": "GeoJSON (Polygon, MultiPolygon, Feature or FeatureCollection of them) "
                                    "or a vector data cube of polygons.", "schema": _POLYGONS},
            "replacement": {"description": "The value masked pixels get.",
                            "schema": {"type": ["number", "boolean", "string", "null"]}, "default": None},
            "inside": {"description": "Mask the pixels inside the polygons instead of those outside.",
                       "schema": {"type": "boolean"}, "default": False},
        },
    },
    "resample_cube_spatial": {
        "summary": "Resample the spatial dimensions to match a target data cube",
        "description": "Puts a raster data cube on the spatial grid (reference system, resolution and pixel "
                       "positions) of a target data cube. Target pixels the data does not cover become "
                       "no-data; other dimensions stay unchanged.",
        "returns": "The raster data cube on the target's spatial grid.",
        "parameters": {
            "data": {"description": "A raster data cube.", "schema": _RASTER},
            "target": {"description": "The raster data cube whose spatial grid to use.", "schema": _RASTER},
            "method": {
                "description": "Resampling method, as in gdalwarp: near (default), bilinear, cubic, "
                               "cubicspline, lanczos, average, mode, max, min, med, q1, q3, sum, rms.",
                "schema": {"type": "string", "enum": ["near", "bilinear", "cubic", "cubicspline", "lanczos",
                                                      "average", "mode", "max", "min", "med", "q1", "q3",
                                                      "sum", "rms"]},
                "default": "near",
            },
        },
    },
    "to_scl_dilation_mask": {
        "summary": "Create a mask for clouds by dilating Sen2Cor scene classification",
        "description": "A cloud mask from the Sentinel-2 L2A scene classification (SCL), as on Copernicus "
                       "Data Space: the pixels not in `mask1_values` are eroded by a disc of "
                       "`erosion_kernel_size` pixels and dilated with a Gaussian of `kernel1_size` pixels "
                       "(sigma size / 6, kept above 0.057); the pixels in `mask2_values` alike with a "
                       "Gaussian of `kernel2_size` pixels (kept above 0.025); a pixel flagged by either is "
                       "masked. "
                       "Aggressive on purpose, to avoid contamination near clouds. A VITO / Copernicus Data "
                       "Space extension.",
        "returns": "A data cube with one band: 1 where masked, 0 where clear.",
        "experimental": True,
        "parameters": {
            "data": {"description": "A data cube holding only the SCL band (or name it in `scl_band_name`).",
                     "schema": _RASTER},
            "erosion_kernel_size": {"description": "Diameter in pixels of the erosion disc; 0 erodes "
                                                   "nothing.", "schema": _KERNEL_SIZE, "default": 0},
            "mask1_values": {"description": "The SCL classes that are clear for the first dilation: "
                                            "every other class is dilated with the first kernel.",
                             "schema": _SCL_CLASSES, "default": [2, 4, 5, 6, 7]},
            "mask2_values": {"description": "The SCL classes dilated with the second kernel.",
                             "schema": _SCL_CLASSES, "default": [3, 8, 9, 10, 11]},
            "kernel1_size": {"description": "Size in pixels of the first Gaussian kernel (odd); 0 does not "
                                            "dilate.", "schema": _KERNEL_SIZE, "default": 17},
            "kernel2_size": {"description": "Size in pixels of the second Gaussian kernel (odd); 0 does not "
                                            "dilate.", "schema": _KERNEL_SIZE, "default": 201},
            "scl_band_name": {"description": "The SCL band, when the data cube has other bands too.",
                              "schema": {"type": ["string", "null"]}, "default": None},
        },
    },
    "pi": {"summary": "Pi (π)", "description": "The ratio of a circle's circumference to its diameter.",
           "returns": "The numerical value of Pi."},
    "e": {"summary": "Euler's number (e)", "description": "The base of the natural logarithm.",
          "returns": "The numerical value of Euler's number."},
    "load_collection": {
        "summary": "Load a collection",
        "description": "Loads a collection as a raster data cube, limited to a spatial extent, a temporal "
                       "extent, bands and scene properties. As on Copernicus Data Space, `spatial_extent` "
                       "may be left out (like null, the extent is then taken from the job and the graph's "
                       "spatial filters) and tiling hints in `featureflags` are accepted (and have no effect "
                       "here).",
        "returns": "A raster data cube.",
        "parameters": {
            "spatial_extent": {
                "description": "A bounding box or GeoJSON polygons; pixels whose centre lies inside are "
                               "loaded. Null or left out: the job's extent, or the union of the graph's "
                               "filter_spatial, filter_bbox and aggregate_spatial geometries.",
                "schema": [{"type": "object", "subtype": "bounding-box"},
                           {"type": "object", "subtype": "geojson"}, {"type": "null"}],
            },
            "featureflags": {"description": "Copernicus Data Space's loading hints (for example "
                                            "`tilesize`); accepted and ignored.",
                             "schema": {"type": "object"}, "default": {}},
        },
    },
    "aggregate_temporal": {
        "summary": "Temporal aggregations",
        "description": "Reduces the labels of the temporal dimension within each of the given intervals "
                       "with `reducer`: one label per interval, in the order given. Intervals may overlap "
                       "and leave gaps; the reducer also runs on an interval without data (most reducers "
                       "then give no-data, `count` gives 0). Time-of-day intervals are not supported.",
        "returns": "A data cube with the same dimensions; the temporal dimension has one label per interval.",
        "parameters": {
            "intervals": {
                "description": "Left-closed intervals `[start, end]` of dates (midnight UTC) or date-times; "
                               "the start is included, the end excluded and must be later.",
                "schema": {"type": "array", "subtype": "temporal-intervals", "minItems": 1,
                           "items": {"type": "array", "subtype": "temporal-interval", "minItems": 2,
                                     "maxItems": 2, "items": {"type": "string"}}},
            },
            "reducer": {"description": "Reduces the values of one interval (`data`) to a single value."},
            "labels": {"description": "Distinct dates or date-times, one per interval; by default the "
                                      "intervals' starts, which must then be distinct.",
                       "schema": {"type": "array", "items": {"type": "string"}}, "default": []},
            "dimension": {"description": "The temporal dimension; null for the data cube's only one.",
                          "schema": {"type": ["string", "null"]}, "default": None},
        },
    },
    "apply_polygon": {
        "summary": "Apply a process to segments of the data cube",
        "description": "For each polygon, runs `process` on the data cube cropped to the smallest box "
                       "around the pixels whose centre lies in the polygon, the box's other pixels set to "
                       "`mask_value`, and writes its result back to the polygon's pixels. Pixels in no "
                       "polygon become no-data; a pixel in two polygons raises `GeometriesOverlap`; a "
                       "polygon outside the data cube is skipped.",
        "returns": "A data cube with the same dimensions and labels.",
        "parameters": {
            "geometries": {"description": "GeoJSON (Polygon, MultiPolygon, Feature or FeatureCollection of "
                                          "them) or a vector data cube of polygons; empty ones are ignored.",
                           "schema": _POLYGONS},
            "process": {"description": "Gets one polygon's part of the data cube (`data`) and returns it "
                                       "with the same dimensions and sizes, or a single value."},
            "mask_value": {"description": "The value of the pixels outside the polygon in the part the "
                                          "process gets; null for no-data.",
                           "schema": {"type": ["number", "boolean", "null"]}, "default": None},
        },
    },
    "run_udf": {
        "summary": "Run a UDF",
        "description": "Runs a Python user-defined function (UDF) on a raster data cube with the openEO "
                       "Python client's UDF runtime (`openeo.udf`): the UDF defines `apply_datacube(cube, "
                       "context)`, `apply_timeseries(series, context)` or a function of one `UdfData`, and "
                       "gets the cube with the dimensions `t`, `bands`, `y`, `x` (those it has, in that "
                       "order). As the reducer of `reduce_dimension` it gets the whole cube and returns it "
                       "without the reduced dimension; in `apply_dimension` it returns the dimension; in "
                       "`apply_neighborhood` it gets each neighbourhood, overlap included, and returns it "
                       "with the same shape. Only Python runs here; a UDF given by URL is not fetched.",
        "returns": "The data cube the UDF returns, with the input's CRS, resolution and labels.",
        "parameters": {
            "data": {"description": "The raster data cube to pass to the UDF, or a list or an object (the "
                                    "UDF gets it as `StructuredData`).",
                     "schema": [_RASTER, {"type": ["array", "object"]}]},
            "udf": {"description": "The UDF's Python code.", "schema": {"type": "string"}},
            "runtime": {"description": "The UDF runtime: `Python` (in any case); others are refused.",
                        "schema": {"type": "string"}},
            "version": {"description": "The Python version: left out, `latest` or 3.x; the UDF runs on the "
                                       "backend's own Python 3.", "schema": {"type": ["string", "null"]}},
            "context": {"description": "Passed to the UDF as `context` (`UdfData.user_context`).",
                        "schema": {"description": "Any data type."}},
        },
    },
    "load_stac": {
        "summary": "Loads data from STAC",
        "description": "Loads a static STAC catalogue, collection or item whose assets are GeoTIFF or COG "
                       "files as a raster data cube `(t, bands, y, x)` in the UTM zone of the extent's "
                       "centre, at the finest native resolution of the bands, reading only the window of "
                       "the extent (nearest neighbour where a file must be reprojected). Items of one UTC "
                       "day are mosaicked into one label of `t` (the first item wins where they overlap); "
                       "nodata (the asset's `raster:bands` nodata, else the file's) becomes null. Only "
                       "local files outside the backend's own folders are read; http(s) URLs only when "
                       "the backend allows remote URLs (`allow_remote_namespaces`), and no STAC API "
                       "searches.",
        "returns": "A raster data cube.",
        "parameters": {
            "url": {"description": "An absolute path or `file://` URL of a STAC catalogue, collection or "
                                   "item JSON file (or an http(s) URL, where the backend allows it).",
                    "schema": {"type": "string", "subtype": "uri"}},
            "spatial_extent": {
                "description": "A bounding box or GeoJSON polygons; pixels whose centre lies inside are "
                               "loaded, and items whose bbox does not meet it are skipped. Null: the "
                               "graph's filter_spatial, filter_bbox and aggregate_spatial geometries, else "
                               "every item.",
                "schema": [{"type": "object", "subtype": "bounding-box"},
                           {"type": "object", "subtype": "geojson"}, {"type": "null"}],
            },
            "temporal_extent": {
                "description": "`[start, end]`, the end excluded: the items whose `datetime` (or "
                               "`start_datetime`..`end_datetime`) meets it. Null: every item.",
                "schema": [{"type": "array", "subtype": "temporal-interval", "minItems": 2, "maxItems": 2,
                            "items": {"type": ["string", "null"]}}, {"type": "null"}],
            },
            "bands": {"description": "Asset keys, or the `eo:bands` names of the assets' bands, in the order "
                                     "wanted. Null: every GeoTIFF asset but thumbnails and overviews.",
                      "schema": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
            "properties": {"description": "Property name -> a condition (child process graph getting "
                                          "`value`) the items must meet, such as `eo:cloud_cover`.",
                           "schema": [{"type": "object"}, {"type": "null"}]},
            "featureflags": {"description": "Copernicus Data Space's loading hints; accepted and ignored.",
                             "schema": {"type": "object"}, "default": {}},
        },
    },
    "load_url": {
        "summary": "Load data from a URL",
        "description": "Loads a local file: a GeoTIFF as a raster data cube `(bands, y, x)` on the file's "
                       "own grid, without a temporal dimension (bands named by the file's band descriptions, "
                       "else `band_1`, ...), or GeoJSON or (Geo)Parquet as a vector data cube of its "
                       "geometries (features without a geometry are left out, properties are not kept). "
                       "Same URL rules as `load_stac`.",
        "returns": "A raster or vector data cube.",
        "parameters": {
            "url": {"description": "An absolute path or `file://` URL (or an http(s) URL, where the backend "
                                   "allows it).", "schema": {"type": "string", "subtype": "uri"}},
            "format": {"description": "`GTiff` (or `GeoTIFF`), `GeoJSON`, or `Parquet` (or `GeoParquet`); "
                                      "case-insensitive.", "schema": {"type": "string"}},
            "options": {"description": "Format options; accepted and unused.", "schema": {"type": "object"},
                        "default": {}},
        },
    },
    "sar_backscatter": {
        "summary": "Computes backscatter from SAR input",
        "description": "Computes a backscatter coefficient from Sentinel-1 GRD data, as on Copernicus Data "
                       "Space. `load_collection(\"SENTINEL1_GRD\")` gives sigma0 on the ellipsoid in linear "
                       "power; this converts it with the scene's incidence angle theta (30-46 degrees across "
                       "a swath): gamma0 = sigma0 / cos(theta), beta0 = sigma0 / sin(theta). The synthetic "
                       "terrain is flat, so terrain and ellipsoid coefficients agree and `elevation_model` "
                       "changes nothing. Bands asked for are appended after the polarisations: `mask`, "
                       "`contributing_area`, `local_incidence_angle`, `ellipsoid_incidence_angle`.",
        "returns": "Backscatter values in linear power (float32), with the bands asked for appended.",
        "experimental": True,
        "parameters": {
            "data": {"description": "A Sentinel-1 GRD data cube straight from `load_collection` (bands VV, "
                                    "VH, HH, HV only; dimensions t, bands, y, x).", "schema": _RASTER},
            "coefficient": {
                "description": "The backscatter coefficient: `beta0` (radar brightness), `sigma0-ellipsoid`, "
                               "`sigma0-terrain`, `gamma0-ellipsoid` or `gamma0-terrain` (the default). Null "
                               "(non-normalised digital numbers) is not available.",
                "schema": [{"type": "string", "enum": ["beta0", "sigma0-ellipsoid", "sigma0-terrain",
                                                       "gamma0-ellipsoid", "gamma0-terrain"]},
                           {"type": "null"}],
                "default": "gamma0-terrain",
            },
            "elevation_model": {"description": "The digital elevation model (for example `COPERNICUS_30`); "
                                               "null for the backend's choice. Flat terrain here.",
                                "schema": {"type": ["string", "null"]}, "default": None},
            "mask": {"description": "Add a band `mask`: 1 where valid, null where the data is nodata (flat "
                                    "terrain has no layover or shadow).",
                     "schema": {"type": "boolean"}, "default": False},
            "contributing_area": {"description": "Add a band `contributing_area`: the area in square metres "
                                                 "contributing to each pixel.",
                                  "schema": {"type": "boolean"}, "default": False},
            "local_incidence_angle": {"description": "Add a band `local_incidence_angle` in degrees.",
                                      "schema": {"type": "boolean"}, "default": False},
            "ellipsoid_incidence_angle": {"description": "Add a band `ellipsoid_incidence_angle` in "
                                                         "degrees.",
                                          "schema": {"type": "boolean"}, "default": False},
            "noise_removal": {"description": "Remove the thermal noise (the default); false adds the noise "
                                             "floor (-22 dB) back.",
                              "schema": {"type": "boolean"}, "default": True},
            "options": {"description": "Backend-specific options; accepted and ignored.",
                        "schema": {"type": "object"}, "default": {}},
        },
    },
}
"""Process id -> ``summary``, ``description``, ``returns`` (a description), ``experimental`` and
``parameters`` (name -> fields of the parameter that replace the generated ones)."""
