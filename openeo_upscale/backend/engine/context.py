"""What a process implementation is handed, and what it may raise.

- :class:`Args`: the node's evaluated arguments; :class:`ProcessArgumentError`: bad input.
- :class:`EvalContext`: the node being evaluated (ids, its graph, its :class:`Scope`, the
  job's services).
- :data:`ARRAY_DIM` with :func:`to_array_dim` / :func:`from_array_dim`: the dimension array
  processes work along (the evaluator's docstring says how cube processes use it).

This module imports nothing of the engine, so the registry, the evaluator and every process
module import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import xarray as xr

__all__ = [
    "ARRAY_DIM",
    "Args",
    "EvalContext",
    "Evaluating",
    "ProcessArgumentError",
    "Scope",
    "from_array_dim",
    "to_array_dim",
]

ARRAY_DIM = "__array__"
"""The reserved dimension name array processes work along (see the evaluator's docstring)."""


class ProcessArgumentError(Exception):
    """Raised by a process implementation for a missing or invalid argument.

    The evaluator turns it into a ``ProcessGraphError`` with the openEO code
    ``ProcessParameterInvalid`` (or ``ProcessParameterRequired`` when ``required`` is set),
    naming the node.
    """

    def __init__(self, message: str, *, parameter: str | None = None, required: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        self.required = required


class Args(dict[str, Any]):
    """The evaluated arguments of a node; a missing required argument raises a clear error."""

    def __missing__(self, key: str) -> Any:
        raise ProcessArgumentError(f"missing required argument '{key}'", parameter=key, required=True)


class Scope:
    """Parameter values of one graph evaluation, falling back to the enclosing scope."""

    def __init__(self, values: Mapping[str, Any], parent: Scope | None = None) -> None:
        self.values = dict(values)
        self.parent = parent

    def lookup(self, name: str) -> Any:
        """The value of parameter `name`; raises KeyError when no scope defines it."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope.values:
                return scope.values[name]
            scope = scope.parent
        if name == "context":
            return None
        raise KeyError(name)

    def names(self) -> list[str]:
        """All parameter names visible in this scope."""
        names: set[str] = set()
        scope: Scope | None = self
        while scope is not None:
            names.update(scope.values)
            scope = scope.parent
        return sorted(names)


class Evaluating(Protocol):
    """What a context needs of the evaluator that made it (the engine's `Evaluator`)."""

    @property
    def services(self) -> Mapping[str, Any]: ...

    def _resolve(self, value: Any, values: Mapping[str, Any], scope: Scope, node_id: str) -> Any: ...


@dataclass(frozen=True)
class EvalContext:
    """What a process implementation knows about the node it evaluates."""

    evaluator: Evaluating
    node_id: str
    process_id: str
    namespace: str | None
    graph: Mapping[str, Any] = field(repr=False)
    """The graph the node belongs to (a UDP body or callback graph, not always the top)."""
    scope: Scope = field(repr=False)
    _values: Mapping[str, Any] = field(repr=False)

    @property
    def services(self) -> Mapping[str, Any]:
        """The job's services (data provider, output folder...), as given to the evaluator."""
        return self.evaluator.services

    def resolve(self, value: Any) -> Any:
        """Resolve references in a raw argument value of any node of `graph`, in this scope.

        Lets a process look at other nodes' arguments, e.g. ``load_collection`` finding the
        geometry of a downstream ``filter_spatial``. ``from_node`` works only for nodes that
        have been evaluated and are still held; others raise ProcessArgumentError.
        """
        return self.evaluator._resolve(value, self._values, self.scope, self.node_id)


def to_array_dim(cube: xr.DataArray, dimension: str) -> xr.DataArray:
    """`cube` with `dimension` renamed to ARRAY_DIM, as array processes expect it."""
    if dimension not in cube.dims:
        raise ProcessArgumentError(f"the data cube has no dimension '{dimension}' (it has {list(cube.dims)})")
    return cube.rename({dimension: ARRAY_DIM})


def from_array_dim(result: Any, dimension: str) -> Any:
    """A callback result with ARRAY_DIM renamed back to `dimension` (other values as they are)."""
    if isinstance(result, xr.DataArray) and ARRAY_DIM in result.dims:
        return result.rename({ARRAY_DIM: dimension})
    return result
