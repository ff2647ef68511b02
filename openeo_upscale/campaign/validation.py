"""The checks a campaign passes before any job exists: safe tile ids, and each task's UDP arguments.

Arguments are checked with the `jsonschema` library against each parameter's schema, in the
dialect the schema declares (``$schema``) or Draft 2020-12, with the library's format checker
(``date``, ``date-time``, ``uri``, ...), plus openEO's own ``subtype`` keyword where it says more
than JSON Schema can: a ``temporal-interval`` holds two real dates or date-times (or ``null``) in
order, a ``bounding-box`` has its south below its north, a ``geojson`` value is a geometry shapely
can read. An openEO schema may also be a list of schemas, read as ``anyOf``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
import pandas as pd
import shapely.errors
import shapely.geometry

from openeo_upscale.campaign.creator import (
    MAX_PROBLEMS,
    Udp,
    check_tile_ids,
    parameters_for,
    plain,
    row_cell,
    tile_id_problem,
)
from openeo_upscale.errors import ParameterError

__all__ = ["MAX_PROBLEMS", "check_tile_ids", "tile_id_problem", "validate_campaign", "validate_parameters"]

# -- one value against one schema -----------------------------------------------------------------------


def _validator_class(schema: Any) -> type[jsonschema.protocols.Validator]:
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator) \
        if isinstance(schema, dict) else jsonschema.Draft202012Validator
    return _WITH_SUBTYPES.setdefault(base, jsonschema.validators.extend(base, {"subtype": _subtype}))


_WITH_SUBTYPES: dict[type, Any] = {}


def _as_schema(schema: Any) -> Any:
    """openEO's list of schemas as ``anyOf`` (recursively where lists stand for schemas)."""
    if isinstance(schema, list):
        return {"anyOf": [_as_schema(s) for s in schema]}
    return schema


def _subtype(validator: Any, subtype: Any, value: Any, schema: Mapping[str, Any]) -> Iterator[Any]:
    """openEO's ``subtype`` keyword, where it adds a rule JSON Schema cannot say."""
    error = jsonschema.exceptions.ValidationError
    if subtype == "temporal-interval" and isinstance(value, list) and len(value) == 2:
        ends = [_instant(v) for v in value]
        if value[0] is None and value[1] is None:
            yield error("a temporal interval needs a start or an end; both are null")
        elif None not in ends and ends[0] >= ends[1]:  # type: ignore[operator]
            yield error(f"the interval's start {value[0]!r} is not before its end {value[1]!r}")
    elif subtype == "bounding-box" and isinstance(value, Mapping):
        south, north = value.get("south"), value.get("north")
        if isinstance(south, int | float) and isinstance(north, int | float) and south > north:
            yield error(f"south {south} is above north {north}")
    elif subtype == "geojson" and isinstance(value, Mapping):
        try:
            shapely.geometry.shape(value.get("geometry", value) if value.get("type") == "Feature" else value)
        except (AttributeError, KeyError, TypeError, ValueError, shapely.errors.ShapelyError) as exc:
            if value.get("type") != "FeatureCollection":
                yield error(f"not a GeoJSON geometry shapely can read: {exc}")


def _instant(value: Any) -> dt.datetime | None:
    """A date, date-time or year string as a naive UTC datetime, or None (null or unreadable)."""
    if not isinstance(value, str):
        return None
    try:
        if len(value) == 4 and value.isdigit():
            return dt.datetime(int(value), 1, 1)
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def _schema_problem(schema: Any, value: Any) -> tuple[str, str] | None:
    """The most relevant broken rule as (keyword, detail), or None when `value` fits `schema`."""
    if schema is None or schema == {}:
        return None
    schema = _as_schema(schema)
    cls = _validator_class(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    try:
        errors = list(validator.iter_errors(value))
    except (jsonschema.exceptions.UnknownType, jsonschema.exceptions.SchemaError):
        # The UDP's own schema is not valid JSON Schema (an unknown type name, say): the backend
        # checks the argument itself; refusing the whole campaign here would be worse.
        return None
    if not errors:
        return None
    shown = sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])[:3]
    details = [_describe(error, value) for error in shown]
    detail = "; and ".join(details)
    return str(shown[0].validator), detail if len(detail) <= 400 else detail[:397] + "..."


def _describe(error: jsonschema.exceptions.ValidationError, value: Any) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    detail = error.message
    if error.context:
        # A choice (anyOf, oneOf, a list of schemas): say what each branch wanted.
        branches = sorted({sub.message for sub in error.context})
        detail = f"{show(value_at(value, error.absolute_path))} fits none of: {', '.join(branches)}"
    return (f"at {where}: " if where else "") + detail


def value_at(value: Any, path: Iterable[Any]) -> Any:
    for key in path:
        value = value[key]
    return value


def show(value: Any) -> str:
    """A value as short JSON for a message."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


# -- tasks ----------------------------------------------------------------------------------------------


def _problems(udp: Udp, values: Mapping[str, Any], task_id: str) -> list[ParameterError]:
    problems: list[ParameterError] = []

    def add(name: str, rule: str, detail: str) -> None:
        problems.append(ParameterError(f"task {task_id}: parameter {name!r} breaks rule {rule!r}: {detail}",
                                       task_id=task_id, parameter=name, rule=rule))

    declared = set(udp.parameter_names)
    for name in values:
        if name not in declared:
            add(name, "unknown", f"UDP {udp.process_id!r} declares no such parameter")
    for spec in udp.parameters:
        name = spec["name"]
        if name not in values:
            if not spec.get("optional", False) and "default" not in spec:
                add(name, "required", "no value in the task, the campaign defaults or the UDP")
            continue
        if "default" in spec and values[name] == spec["default"]:
            # The UDP's own default is its author's choice, and often a null its schema does not
            # list (several catalogue UDPs do this): the backend takes it as it is, so do we.
            continue
        problem = _schema_problem(spec.get("schema"), values[name])
        if problem is not None:
            add(name, *problem)
    return problems


def validate_parameters(udp: Udp, values: Mapping[str, Any], *, task_id: str) -> None:
    """Check one task's arguments against the UDP's parameters; `ParameterError` on the first problem."""
    problems = _problems(udp, plain(values), str(task_id))
    if problems:
        raise problems[0]


def _rows(tasks: Iterable[Mapping[str, Any]] | pd.DataFrame) -> Iterable[Mapping[str, Any]]:
    if isinstance(tasks, pd.DataFrame):
        return (row for _, row in tasks.iterrows())
    return tasks


def _task_id(row: Mapping[str, Any], index: int) -> str:
    for key in ("tile_id", "id"):
        value = row_cell(row, key)
        if value is not None:
            return str(value)
    return f"#{index}"


def validate_campaign(udp: Udp, tasks: Iterable[Mapping[str, Any]] | pd.DataFrame, *,
                      defaults: Mapping[str, Any] | None = None, column_map: Mapping[str, str] | None = None,
                      max_problems: int = MAX_PROBLEMS) -> None:
    """Check every task before any job is created; one `ParameterError` listing the problems found.

    Also refuses campaign `defaults` or a `column_map` naming parameters the UDP does not declare
    (a typo there would otherwise be ignored silently).
    """
    defaults = defaults or {}
    column_map = column_map or {}
    declared = set(udp.parameter_names)
    unknown = sorted((set(defaults) | set(column_map)) - declared)
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise ParameterError(f"campaign defaults or column_map name parameters UDP {udp.process_id!r} "
                             f"does not declare: {names} (declared: {sorted(declared)})",
                             parameter=unknown[0], rule="unknown")
    found: list[ParameterError] = []
    bad_tasks = 0
    total = 0
    problem_count = 0
    for index, row in enumerate(_rows(tasks)):
        total += 1
        task_id = _task_id(row, index)
        try:
            values = parameters_for(udp, row, defaults=defaults, column_map=column_map)
        except ParameterError as exc:
            task_problems = [ParameterError(f"task {task_id}: {exc}", task_id=task_id, rule=exc.rule)]
        else:
            task_problems = _problems(udp, values, task_id)
        if task_problems:
            bad_tasks += 1
            problem_count += len(task_problems)
            found.extend(task_problems[: max(0, max_problems - len(found))])
    if bad_tasks:
        more = f"; ... ({len(found)} of {problem_count} problems shown)" if problem_count > len(found) else ""
        listing = "; ".join(str(p) for p in found)
        raise ParameterError(f"{bad_tasks} of {total} tasks have invalid parameters for UDP "
                             f"{udp.process_id!r}: {listing}{more}", problems=tuple(found))

