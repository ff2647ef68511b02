"""``run_udf``: Python UDFs, run by the ``openeo`` client's own UDF runtime (:mod:`openeo.udf`).

The UDF gets the data cube as :mod:`openeo.udf` expects it: an :class:`~openeo.udf.UdfData`
holding one :class:`~openeo.udf.XarrayDataCube` whose array has the dimensions ``t``, ``bands``,
``y``, ``x`` (those the cube has, in that order; any other dimension between ``bands`` and
``y``), with the cube's labels as coordinates, and ``context`` as ``UdfData.user_context``.
:func:`openeo.udf.run_code.run_udf_code` picks the entry point (``apply_datacube``,
``apply_hypercube``, ``apply_timeseries`` or a function of one ``UdfData`` parameter such as
``apply_udf_data``) and the UDF's one result cube comes back with the cube's attributes (crs,
resolution, nodata) and, where the UDF dropped them, its coordinates.

Where ``run_udf`` is used:

- top level, or as the process of ``apply`` (its ``x``): the UDF gets the whole cube;
- as the reducer of ``reduce_dimension`` (or ``aggregate_temporal_period``): the UDF gets the
  whole cube, the reduced dimension under its own name (not the engine's ``ARRAY_DIM``), and
  must return it without that dimension (as the catalogue's biopar does);
- as the process of ``apply_dimension``: the same, and the UDF returns the dimension (its
  length may change);
- as the process of ``apply_neighborhood``: the UDF gets each neighbourhood, overlap included,
  as a cube (one call when the size covers the cube) and returns it with the same shape;
- on a list or an object instead of a cube: the UDF gets it as ``StructuredData`` and
  ``run_udf`` returns the ``data`` of the one ``StructuredData`` the UDF leaves.

Only Python is run (``runtime`` "Python" in any case, ``version`` left out, "latest" or 3.x);
:func:`udf_problem` says why anything else is refused, for validation as for evaluation. A
UDF given by URL is not fetched (as remote namespaces are not by default). An exception of the
UDF is a :class:`UdfError` naming it; a ``MemoryError`` is not caught, so the job's worker
reports that the job exceeded its memory limit.
"""

from __future__ import annotations

import re
import sys
import traceback
from typing import Any

import numpy as np
import xarray as xr
from openeo.udf import OpenEoUdfException, StructuredData, UdfData, XarrayDataCube
from openeo.udf.run_code import run_udf_code

from openeo_upscale.backend.engine._common import require_cube
from openeo_upscale.backend.engine.context import ARRAY_DIM, Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.registry import PROCESSES
from openeo_upscale.backend.errors import ApiError

__all__ = ["PYTHON_VERSION", "UdfError", "udf_problem"]

PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
"""The Python version UDFs run on (the backend's own interpreter)."""

_VERSIONS = re.compile(r"3(\.[0-9x]+)*|latest", re.IGNORECASE)
"""The ``version`` values accepted: "3", "3.11", "3.x", "latest"."""
_ENTRY_POINTS = (
    " It must define apply_datacube(cube, context), apply_timeseries(series, context) or a function of one"
    " UdfData parameter, annotated as openeo.udf expects (see openeo.udf.udf_signatures)."
)
_ORDER = ("t", "bands", "y", "x")
"""The dimension order of the openEO UDF contract."""


class UdfError(ApiError):
    """The UDF failed (raised, exited, returned no data cube); the message says how."""

    status = 400
    code = "UdfError"


def udf_problem(udf: Any, runtime: Any, version: Any) -> str | None:
    """Why this backend cannot run a UDF given with these ``run_udf`` arguments, or None.

    Only literal values are judged: a reference (a dict) is not known before evaluation.
    """
    if isinstance(runtime, str) and runtime.lower() != "python":
        return f"runtime '{runtime}' is not supported by this backend; it runs Python UDFs"
    if isinstance(version, str) and not _VERSIONS.fullmatch(version):
        return f"Python version '{version}' is not supported by this backend; it runs Python {PYTHON_VERSION}"
    if isinstance(udf, str) and re.match(r"\s*https?://", udf, re.IGNORECASE):
        return "a UDF given by URL is not fetched by this backend; give its code in 'udf'"
    return None


@PROCESSES.register("run_udf")
def run_udf(args: Args, ctx: EvalContext) -> Any:
    """Run the Python UDF ``udf`` on ``data``, a raster cube or structured data (module docstring)."""
    code, runtime = args["udf"], args["runtime"]
    if not isinstance(code, str) or not code.strip():
        raise ProcessArgumentError("'udf' must be the UDF's Python code", parameter="udf")
    if not isinstance(runtime, str):
        raise ProcessArgumentError("'runtime' must be a string such as 'Python'", parameter="runtime")
    problem = udf_problem(code, runtime, args.get("version"))
    if problem:
        parameter = "udf" if "URL" in problem else "version" if problem.startswith("Python") else "runtime"
        raise ProcessArgumentError(problem, parameter=parameter)
    if isinstance(args["data"], list | dict):
        return _structured(code, args["data"], args.get("context"))
    cube = require_cube(args["data"])
    dim = _array_dimension(cube) if ARRAY_DIM in cube.dims else None
    given = cube.rename({ARRAY_DIM: dim}) if dim else cube
    # A copy: a UDF may write into its cube, which other nodes (or the neighbouring chunks of
    # apply_neighborhood, views of one array) still read.
    given = given.transpose(*_contract_order(given.dims)).copy()
    out = _restore(_call(code, given, args.get("context")), given)
    if dim and dim in out.dims:
        out = out.rename({dim: ARRAY_DIM})
    attrs = dict(cube.attrs)
    if out.dtype.kind == "f" and "nodata" in attrs:
        attrs["nodata"] = np.nan  # NaN is the engine's nodata in float cubes
    return out.assign_attrs(attrs)


def _array_dimension(cube: xr.DataArray) -> str:
    """The dimension a callback's ARRAY_DIM stands for, by its labels and the dimensions left."""
    labels = cube[ARRAY_DIM] if ARRAY_DIM in cube.coords else None
    if labels is not None and np.issubdtype(labels.dtype, np.datetime64) and "t" not in cube.dims:
        return "t"
    missing = [d for d in ("bands", "t", "y", "x") if d not in cube.dims]
    if not missing:
        raise ProcessArgumentError("run_udf cannot tell which dimension this callback works along")
    return missing[0]


def _contract_order(dims: tuple[Any, ...]) -> list[Any]:
    first = [d for d in _ORDER[:2] if d in dims]
    last = [d for d in _ORDER[2:] if d in dims]
    return [*first, *[d for d in dims if d not in _ORDER], *last]


def _call(code: str, cube: xr.DataArray, context: Any) -> Any:
    """The UDF's one result cube (an array or an XarrayDataCube)."""
    crs = cube.attrs.get("crs")
    data = UdfData(
        proj={"EPSG": crs} if isinstance(crs, int) else {},
        datacube_list=[XarrayDataCube(cube)],
        user_context=context,
    )
    cubes = _execute(code, data).get_datacube_list() or []
    if len(cubes) != 1:
        raise UdfError(f"the UDF returned {len(cubes)} data cubes; it must return one")
    return cubes[0]


def _structured(code: str, value: list[Any] | dict[str, Any], context: Any) -> Any:
    """A list or object given to the UDF as ``StructuredData`` (the catalogue's
    sentinel1_changedetection computes its dates so); the ``data`` of the UDF's one result."""
    data = UdfData(structured_data_list=[StructuredData(value)], user_context=context)
    results = _execute(code, data).get_structured_data_list() or []
    if len(results) != 1:
        raise UdfError(f"the UDF returned {len(results)} structured data items; it must return one")
    return results[0].data


def _execute(code: str, data: UdfData) -> UdfData:
    """`run_udf_code` on `data`; failures of the UDF become UdfError, a MemoryError stays one."""
    try:
        result = run_udf_code(code, data)
    except MemoryError:
        raise  # the worker reports it as the job exceeding its memory limit
    except OpenEoUdfException as exc:
        hint = _ENTRY_POINTS if "No UDF found" in str(exc) else ""
        raise UdfError(f"the UDF failed: {exc}{hint}") from exc
    except SystemExit as exc:
        raise UdfError(f"the UDF exited (SystemExit: {exc.code}){_where(exc)}") from exc
    except Exception as exc:  # the user's code: any error it raises is reported as its error
        raise UdfError(f"the UDF raised {type(exc).__name__}: {exc}{_where(exc)}") from exc
    return result


def _where(exc: BaseException) -> str:
    """Where in the UDF's code the error happened (``exec``'d code is the file ``<string>``)."""
    frames = traceback.extract_tb(exc.__traceback__)
    lines = [frame.lineno for frame in frames if frame.filename == "<string>"]
    return f" (line {lines[-1]} of the UDF)" if lines else ""


def _restore(result: Any, given: xr.DataArray) -> xr.DataArray:
    """The UDF's result as a cube: the input's labels where the UDF dropped them, no stray coords."""
    array = result.get_array() if isinstance(result, XarrayDataCube) else result
    if not isinstance(array, xr.DataArray):
        raise UdfError(f"the UDF returned {type(array).__name__}, not a data cube")
    extra = [str(d) for d in array.dims if d not in given.dims]
    if extra:
        raise UdfError(f"the UDF returned dimensions {extra} the data cube does not have "
                       f"(it has {[str(d) for d in given.dims]})")
    # A label picked with .sel(bands=...) stays as a scalar coordinate: not a dimension any more.
    stray = [c for c in array.coords if c not in array.dims and (c not in given.coords or c in given.dims)]
    array = array.drop_vars(stray)
    labels = {d: given[d].values for d in array.dims
              if d not in array.coords and d in given.coords and array.sizes[d] == given.sizes[d]}
    return array.assign_coords(labels).transpose(*_contract_order(array.dims))
