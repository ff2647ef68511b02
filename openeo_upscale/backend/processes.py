"""The catalogue of predefined processes the local backend accepts, served at `/processes`.

In simulated mode a process graph is validated against this catalogue (process ids, required
and unknown arguments) but not evaluated. Parameter schemas are deliberately loose here; the
process-graph engine of real mode refines them. Processes with a full description (summary,
parameters with their schemas and defaults) take it from :mod:`.process_details`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from openeo_upscale.backend.process_details import DETAILS

# One line per process: its parameters in order; a trailing "?" marks an optional one.
# Written out by hand because no maintained package ships the openEO process specs.
_SIGNATURES: dict[str, str] = {
    # math
    "absolute": "x",
    "add": "x y",
    "subtract": "x y",
    "multiply": "x y",
    "divide": "x y",
    "power": "base p",
    "sqrt": "x",
    "exp": "p",
    "ln": "x",
    "log": "x base",
    "mod": "x y",
    "clip": "x min max",
    "linear_scale_range": "x inputMin inputMax outputMin? outputMax?",
    "round": "x p?",
    "floor": "x",
    "ceil": "x",
    "int": "x",
    "sgn": "x",
    "normalized_difference": "x y",
    "ndvi": "data nir? red? target_band?",
    "sin": "x",
    "cos": "x",
    "tan": "x",
    "arctan": "x",
    "arccos": "x",
    "arcsin": "x",
    "cosh": "x",
    "sinh": "x",
    "tanh": "x",
    "constant": "x",
    "arctan2": "y x",
    "pi": "",
    "e": "",
    # comparison and logic
    "eq": "x y delta? case_sensitive?",
    "neq": "x y delta? case_sensitive?",
    "gt": "x y",
    "gte": "x y",
    "lt": "x y",
    "lte": "x y",
    "between": "x min max exclude_max?",
    "and": "x y",
    "or": "x y",
    "xor": "x y",
    "not": "x",
    "if": "value accept reject?",
    "is_nan": "x",
    "is_nodata": "x",
    "is_valid": "x",
    "is_infinite": "x",
    # arrays and reducers
    "array_element": "data index? label? return_nodata?",
    "array_create": "data? repeat?",
    "array_apply": "data process context?",
    "array_concat": "array1 array2",
    "array_filter": "data condition context?",
    "array_find": "data value reverse?",
    "array_contains": "data value",
    "array_labels": "data",
    "array_interpolate_linear": "data",
    "count": "data condition? context?",
    "first": "data ignore_nodata?",
    "last": "data ignore_nodata?",
    "max": "data ignore_nodata?",
    "min": "data ignore_nodata?",
    "mean": "data ignore_nodata?",
    "median": "data ignore_nodata?",
    "sum": "data ignore_nodata?",
    "product": "data ignore_nodata?",
    "sd": "data ignore_nodata?",
    "variance": "data ignore_nodata?",
    "quantiles": "data probabilities? q? ignore_nodata?",
    "any": "data ignore_nodata?",
    "all": "data ignore_nodata?",
    "order": "data asc? nodata?",
    "sort": "data asc? nodata?",
    # dates
    "date_difference": "date1 date2 unit?",
    "date_shift": "date value unit",
    "date_replace_component": "date value component",
    "date_between": "x min max exclude_max?",
    # cubes
    # CDSE leaves a missing spatial extent to the graph and accepts tiling hints (featureflags).
    "load_collection": "id spatial_extent? temporal_extent bands? properties? featureflags?",
    "load_stac": "url spatial_extent? temporal_extent? bands? properties? featureflags?",
    "load_url": "url format options?",
    "save_result": "data format options?",
    "filter_bbox": "data extent",
    "filter_spatial": "data geometries",
    "filter_temporal": "data extent dimension?",
    "filter_bands": "data bands? wavelengths?",
    "filter_labels": "data condition dimension context?",
    "apply": "data process context?",
    "apply_dimension": "data process dimension target_dimension? context?",
    "apply_neighborhood": "data process size overlap? context?",
    "apply_kernel": "data kernel factor? border? replace_invalid?",
    "apply_polygon": "data geometries process mask_value? context?",
    "reduce_dimension": "data reducer dimension context?",
    "aggregate_temporal_period": "data period reducer dimension? context?",
    "aggregate_temporal": "data intervals reducer labels? dimension? context?",
    "aggregate_spatial": "data geometries reducer target_dimension? context?",
    "vector_to_raster": "data target",
    "merge_cubes": "cube1 cube2 overlap_resolver? context?",
    "mask": "data mask replacement?",
    "mask_polygon": "data mask replacement? inside?",
    "rename_labels": "data dimension target source?",
    "rename_dimension": "data source target",
    "add_dimension": "data name label type?",
    "drop_dimension": "data name",
    "dimension_labels": "data dimension",
    "resample_spatial": "data resolution? projection? method? align?",
    "resample_cube_spatial": "data target method?",
    "to_scl_dilation_mask": "data erosion_kernel_size? mask1_values? mask2_values? kernel1_size? "
                            "kernel2_size? scl_band_name?",
    "sar_backscatter": "data coefficient? elevation_model? mask? contributing_area? local_incidence_angle? "
                       "ellipsoid_incidence_angle? noise_removal? options?",
    # user-defined functions
    "run_udf": "data udf runtime version? context?",
    # texts
    "text_concat": "data separator?",
}

# Parameters that take a child process (callback), with the callback's own parameters.
_CALLBACKS: dict[tuple[str, str], tuple[str, ...]] = {
    ("apply", "process"): ("x", "context"),
    ("apply_dimension", "process"): ("data", "context"),
    ("apply_neighborhood", "process"): ("data", "context"),
    ("apply_polygon", "process"): ("data", "context"),
    ("array_apply", "process"): ("x", "index", "label", "context"),
    ("array_filter", "condition"): ("x", "index", "label", "context"),
    ("count", "condition"): ("x", "context"),
    ("filter_labels", "condition"): ("value", "context"),
    ("reduce_dimension", "reducer"): ("data", "context"),
    ("aggregate_temporal_period", "reducer"): ("data", "context"),
    ("aggregate_temporal", "reducer"): ("data", "context"),
    ("aggregate_spatial", "reducer"): ("data", "context"),
    ("merge_cubes", "overlap_resolver"): ("x", "y", "context"),
    ("load_collection", "properties"): ("value",),
}

_CUBE_PROCESSES = frozenset({
    "add_dimension", "aggregate_temporal", "aggregate_temporal_period", "apply", "apply_dimension",
    "apply_kernel", "apply_neighborhood", "apply_polygon", "drop_dimension", "filter_bands", "filter_bbox",
    "filter_labels", "filter_spatial", "filter_temporal", "load_collection", "load_stac", "load_url", "mask",
    "mask_polygon", "merge_cubes", "ndvi", "reduce_dimension", "rename_dimension", "rename_labels",
    "resample_cube_spatial", "resample_spatial",
    "sar_backscatter", "to_scl_dilation_mask", "vector_to_raster",
})
_BOOLEAN_PROCESSES = frozenset({
    "and", "or", "xor", "not", "eq", "neq", "lt", "lte", "gt", "gte", "between", "is_nan", "is_nodata",
    "is_valid", "is_infinite", "any", "all", "array_contains", "date_between",
})
_ARRAY_PROCESSES = frozenset({
    "array_apply", "array_concat", "array_create", "array_filter", "array_interpolate_linear", "array_labels",
    "dimension_labels", "order", "sort", "quantiles",
})
_ANY_PROCESSES = frozenset({"if", "array_element", "first", "last", "max", "min", "constant", "run_udf"})
_DATACUBE = {"type": "object", "subtype": "datacube"}


def _returns(pid: str) -> dict[str, Any]:
    """The schema of what a process returns, by kind (numbers unless listed otherwise)."""
    if pid in _CUBE_PROCESSES:
        return _DATACUBE
    if pid == "aggregate_spatial":
        return {"type": "object", "subtype": "datacube", "description": "A vector data cube."}
    if pid == "save_result":
        return {"type": "boolean"}
    if pid in _BOOLEAN_PROCESSES:
        return {"type": ["boolean", "null"]}
    if pid in _ARRAY_PROCESSES:
        return {"type": "array", "items": {"description": "Any data type."}}
    if pid == "text_concat":
        return {"type": "string"}
    if pid in ("date_shift", "date_replace_component"):
        return {"type": ["string", "null"], "format": "date-time", "subtype": "date-time"}
    if pid in _ANY_PROCESSES:
        return {"description": "Any data type."}
    return {"type": ["number", "null"]}


_CATEGORIES = {
    "load_collection": "cubes",
    "save_result": "cubes",
    "ndvi": "math > indices",
    "to_scl_dilation_mask": "cubes",
    "text_concat": "texts",
}


def signatures() -> dict[str, list[tuple[str, bool]]]:
    """Process id -> [(parameter name, optional)]."""
    out: dict[str, list[tuple[str, bool]]] = {}
    for pid, sig in _SIGNATURES.items():
        out[pid] = [(p.rstrip("?"), p.endswith("?")) for p in sig.split()]
    return out


def callback_parameters(process_id: str, argument: str) -> tuple[str, ...] | None:
    """The parameters a child process of (process, argument) may read, or None for no callback."""
    return _CALLBACKS.get((process_id, argument))


@cache
def process_specs() -> list[dict[str, Any]]:
    """The `/processes` listing: every process with its parameters and return value."""
    specs = []
    for pid, params in signatures().items():
        details = DETAILS.get(pid, {})
        spec: dict[str, Any] = {
            "id": pid,
            "summary": details.get("summary", pid.replace("_", " ").capitalize()),
            "description": details.get("description", f"openEO process `{pid}`."),
            "categories": [_CATEGORIES.get(pid, "local")],
            "parameters": [],
            "returns": {"description": details.get("returns", "The result."), "schema": _returns(pid)},
        }
        if details.get("experimental"):
            spec["experimental"] = True
        described = details.get("parameters", {})
        for name, optional in params:
            param: dict[str, Any] = {"name": name, "description": f"Parameter `{name}`.", "schema": {}}
            if name in ("data", "cube1", "cube2") and (pid in _CUBE_PROCESSES or pid in ("aggregate_spatial",
                                                                                          "save_result")):
                param["schema"] = _DATACUBE
            cb = callback_parameters(pid, name)
            if cb is not None:
                param["schema"] = {
                    "type": "object",
                    "subtype": "process-graph",
                    "parameters": [{"name": n, "description": n, "schema": {}} for n in cb],
                }
            if optional:
                param["optional"] = True
                param["default"] = None
            param.update(described.get(name, {}))
            spec["parameters"].append(param)
        specs.append(spec)
    return specs
