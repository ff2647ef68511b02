"""The registry of process implementations the engine can evaluate.

A process implementation is a function ``impl(args, ctx) -> value``:

- ``args`` is an :class:`~openeo_upscale.backend.engine.context.Args` (a ``dict``) of the
  node's argument values, already evaluated: ``from_node`` and ``from_parameter`` references
  are replaced by their values (also inside lists and objects) and a callback argument
  (``{"process_graph": {...}}``) is replaced by a
  :class:`~openeo_upscale.backend.engine.evaluator.Callback`. Arguments the node does not
  give are absent, so an implementation applies its own defaults with ``args.get(name,
  default)``; ``args[name]`` on a missing required argument raises
  :class:`ProcessArgumentError` naming it.
- ``ctx`` is the :class:`~openeo_upscale.backend.engine.context.EvalContext` of the node:
  its id and process id, the job's ``services`` and the evaluator.

An implementation reports bad input by raising :class:`ProcessArgumentError` with a message
for the user; the evaluator adds the node id and process id. Implementations register on the
module-level :data:`PROCESSES` registry at import time::

    @PROCESSES.register("add")
    def add(args: Args, ctx: EvalContext) -> Any:
        return args["x"] + args["y"]

:class:`Args`, :class:`ProcessArgumentError` and the context live in :mod:`.context`. This
module imports nothing of the engine but :mod:`.context`, so process modules and the evaluator
both import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from openeo_upscale.backend.engine.context import Args, EvalContext

__all__ = ["PROCESSES", "ProcessImpl", "ProcessRegistry"]


class ProcessImpl(Protocol):
    """A process implementation: evaluated arguments and the node's context in, a value out."""

    def __call__(self, args: Args, ctx: EvalContext, /) -> Any: ...


_F = TypeVar("_F", bound=Callable[..., Any])


class ProcessRegistry:
    """Process implementations by process id."""

    def __init__(self) -> None:
        self._impls: dict[str, ProcessImpl] = {}

    def register(self, process_id: str) -> Callable[[_F], _F]:
        """Decorator registering a function as the implementation of `process_id`."""

        def decorator(func: _F) -> _F:
            self.add(process_id, func)
            return func

        return decorator

    def add(self, process_id: str, impl: ProcessImpl) -> None:
        """Register `impl` for `process_id`; registering a process id twice is an error."""
        if process_id in self._impls:
            raise ValueError(f"process '{process_id}' is already registered")
        self._impls[process_id] = impl

    def get(self, process_id: str) -> ProcessImpl | None:
        """The implementation of `process_id`, or None."""
        return self._impls.get(process_id)

    def __contains__(self, process_id: object) -> bool:
        return process_id in self._impls

    def implemented(self) -> set[str]:
        """The ids of all registered processes."""
        return set(self._impls)

    def copy(self) -> ProcessRegistry:
        """An independent registry with the same processes (tests add fakes to a copy)."""
        other = ProcessRegistry()
        other._impls.update(self._impls)
        return other


PROCESSES = ProcessRegistry()
"""The default registry; the engine's process modules (arrays, maths, dates, cubes) populate it at import."""
