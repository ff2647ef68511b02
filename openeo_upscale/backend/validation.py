"""Static checks of a process graph before it is accepted: process ids, namespaces,
collections, required and unknown arguments, node references and UDP parameters.

Every problem names the node id, so a user can find it in a graph of hundreds of nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from openeo_upscale.backend import errors as e
from openeo_upscale.backend.collections import COLLECTIONS
from openeo_upscale.backend.processes import callback_parameters, signatures
from openeo_upscale.backend.udp import UdpResolver

UserProcessLookup = Callable[[str], dict[str, Any] | None]
"""Finds a user's stored process graph by id (namespace `user`)."""

_MAX_DEPTH = 16


class GraphValidator:
    """Validates process graphs against the process catalogue, collections and UDPs."""

    def __init__(self, resolver: UdpResolver, *, only: frozenset[str] | None = None) -> None:
        """``only``: the predefined processes accepted (all of the catalogue when None)."""
        self._resolver = resolver
        self._signatures = {pid: sig for pid, sig in signatures().items() if only is None or pid in only}

    def errors(self, process: Mapping[str, Any], user_processes: UserProcessLookup) -> list[e.ApiError]:
        """Every problem found in `process` (a `{"process_graph": ...}` object)."""
        found: list[e.ApiError] = []
        graph = process.get("process_graph") if isinstance(process, Mapping) else None
        if not isinstance(graph, Mapping) or not graph:
            return [e.ProcessGraphMissing("Invalid process specified. It doesn't contain a process graph.")]
        walk = _Walk(self._resolver, self._signatures, user_processes, found)
        walk.graph(graph, depth=0, where="")
        return found

    def check(self, process: Mapping[str, Any], user_processes: UserProcessLookup) -> None:
        """Raise the first problem found in `process`."""
        found = self.errors(process, user_processes)
        if found:
            raise found[0]


class _Walk:
    """One validation pass: the graph walk, with the caller's UDP lookup and the problems found."""

    def __init__(
        self,
        resolver: UdpResolver,
        signatures: dict[str, list[tuple[str, bool]]],
        lookup: UserProcessLookup,
        found: list[e.ApiError],
    ) -> None:
        self.resolver = resolver
        self.signatures = signatures
        self.lookup = lookup
        self.found = found

    def graph(
        self,
        graph: Mapping[str, Any],
        depth: int,
        where: str,
    ) -> None:
        if depth > _MAX_DEPTH:
            self.found.append(
                e.ProcessGraphInvalid(f"Process graph nested deeper than {_MAX_DEPTH} levels{where}.")
            )
            return
        results = [nid for nid, node in graph.items() if isinstance(node, Mapping) and node.get("result")]
        if len(results) != 1:
            self.found.append(
                e.ProcessGraphInvalid(
                    f"Process graph{where} must have exactly one result node, found {len(results)}."
                )
            )
        for node_id, node in graph.items():
            if not isinstance(node, Mapping) or not isinstance(node.get("process_id"), str):
                self.found.append(e.ProcessGraphInvalid(f"Node '{node_id}'{where} has no process_id."))
                continue
            self._node(str(node_id), node, graph, depth, where)

    def _node(
        self,
        node_id: str,
        node: Mapping[str, Any],
        graph: Mapping[str, Any],
        depth: int,
        where: str,
    ) -> None:
        pid: str = node["process_id"]
        namespace = node.get("namespace")
        args = node.get("arguments") or {}
        if not isinstance(args, Mapping):
            self.found.append(
                e.ProcessGraphInvalid(f"Node '{node_id}' ({pid}){where}: arguments must be an object.")
            )
            return
        self._references(node_id, pid, args, graph, where)

        if namespace in (None, "backend") and pid in self.signatures:
            self._predefined(node_id, pid, args, where)
        elif namespace in (None, "user"):
            udp = self.lookup(pid)
            if udp is None:
                self.found.append(
                    e.ProcessUnsupported(
                        f"Node '{node_id}'{where}: process '{pid}' is not available"
                        + (f" in namespace '{namespace}'." if namespace else ".")
                    )
                )
                return
            self._udp_call(node_id, pid, udp, args, depth, where)
        elif namespace == "backend":
            self.found.append(
                e.ProcessUnsupported(
                    f"Node '{node_id}'{where}: process '{pid}' is not available in namespace 'backend'."
                )
            )
        else:
            try:
                udp = self.resolver.resolve(str(namespace), pid)
            except e.ApiError as exc:
                self.found.append(e.ProcessUnsupported(f"Node '{node_id}'{where}: {exc.message}"))
                return
            self._udp_call(node_id, pid, udp, args, depth, where)

        for arg_name, value in args.items():
            candidates = [(arg_name, value)]
            if pid == "load_collection" and arg_name == "properties" and isinstance(value, Mapping):
                candidates = [(f"properties.{k}", v) for k, v in value.items()]
            for label, cb in candidates:
                if isinstance(cb, Mapping) and isinstance(cb.get("process_graph"), Mapping):
                    inner = f" in callback '{label}' of node '{node_id}'{where}"
                    self.graph(cb["process_graph"], depth + 1, inner)

    def _predefined(self, node_id: str, pid: str, args: Mapping[str, Any], where: str) -> None:
        params = self.signatures[pid]
        names = {n for n, _ in params}
        for name, optional in params:
            if not optional and name not in args:
                self.found.append(
                    e.ProcessParameterRequired(
                        f"Node '{node_id}'{where}: process '{pid}' parameter '{name}' is required."
                    )
                )
        for name in args:
            if name not in names:
                self.found.append(
                    e.ProcessParameterUnsupported(
                        f"Node '{node_id}'{where}: process '{pid}' does not support parameter '{name}'."
                    )
                )
            elif pid == "load_collection" and name == "properties":
                value = args[name]
                if value is not None and not isinstance(value, Mapping):
                    self.found.append(
                        e.ProcessParameterInvalid(
                            f"Node '{node_id}'{where}: parameter 'properties' of process "
                            "'load_collection' must map property names to child process graphs."
                        )
                    )
            elif callback_parameters(pid, name) is not None:
                value = args[name]
                ok = value is None or (
                    isinstance(value, Mapping) and ("process_graph" in value or "from_parameter" in value)
                )
                if not ok:
                    self.found.append(
                        e.ProcessParameterInvalid(
                            f"Node '{node_id}'{where}: parameter '{name}' of process '{pid}' "
                            "must be a child process graph."
                        )
                    )
        if pid == "load_collection":
            cid = args.get("id")
            if isinstance(cid, str) and cid not in COLLECTIONS:
                self.found.append(
                    e.ApiError(
                        f"Node '{node_id}'{where}: collection '{cid}' does not exist.",
                        status=400,
                        code="CollectionNotFound",
                    )
                )

    def _udp_call(
        self,
        node_id: str,
        pid: str,
        udp: Mapping[str, Any],
        args: Mapping[str, Any],
        depth: int,
        where: str,
    ) -> None:
        declared = udp.get("parameters") or []
        known = {p.get("name") for p in declared if isinstance(p, Mapping)}
        for param in declared:
            if not isinstance(param, Mapping):
                continue
            name = param.get("name")
            required = not param.get("optional", False) and "default" not in param
            if required and name not in args:
                self.found.append(
                    e.ProcessParameterRequired(
                        f"Node '{node_id}'{where}: process '{pid}' parameter '{name}' is required."
                    )
                )
        for name in args:
            if name not in known:
                self.found.append(
                    e.ProcessParameterUnsupported(
                        f"Node '{node_id}'{where}: process '{pid}' does not support parameter '{name}'."
                    )
                )
        graph = udp.get("process_graph")
        if isinstance(graph, Mapping):
            self.graph(graph, depth + 1, f" in process '{pid}' called by node '{node_id}'{where}")

    def _references(self, node_id: str, pid: str, args: Any, graph: Mapping[str, Any], where: str) -> None:
        stack = [args]
        while stack:
            value = stack.pop()
            if isinstance(value, Mapping):
                if "process_graph" in value:
                    continue  # a callback has its own scope, checked on its own
                ref = value.get("from_node")
                if isinstance(ref, str) and len(value) == 1 and ref not in graph:
                    self.found.append(
                        e.ProcessGraphInvalid(
                            f"Node '{node_id}' ({pid}){where} refers to node '{ref}', which does not exist."
                        )
                    )
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)
