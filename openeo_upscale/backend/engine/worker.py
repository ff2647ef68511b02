"""One real job in its own process: evaluate the graph, write the results, report how it went.

The job service starts a `JobWorker` per running job. The child process (started with
``spawn``, never ``fork``: the server has threads) caps its address space at the memory limit,
evaluates the process graph with the engine, and writes ``outcome.json`` into the job's results
folder: the assets and usage on success, the error and the failing node otherwise. The parent
only polls the process and reads that file, so a crash of the child (killed, out of memory)
still ends the job with a clear message, and `JobWorker.kill` ends a canceled job at once.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["OUTCOME_FILE", "JobSpec", "JobWorker", "Outcome"]

OUTCOME_FILE = "outcome.json"
"""What the child reports."""

SPEC_FILE = "job-spec.json"
"""What the child is given."""

LOG_FILE = "worker.log"
"""The child's standard error (tracebacks of unexpected failures)."""

WORK_FOLDER = ".worker"
"""Where, inside the job's results folder, the files above live (never listed as assets)."""

KILL_GRACE_SECONDS = 1.0
"""How long a terminated child may take before it is killed outright."""

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSpec:
    """Everything the child needs, as plain data (it crosses a process boundary)."""

    job_id: str
    process: Mapping[str, Any]
    folder: str
    job_extent: tuple[float, float, float, float]
    """The job's area (lon/lat) for a `load_collection` without a spatial extent."""
    udp_dirs: tuple[str, ...] = ()
    user_processes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    memory_limit_mb: int | None = None
    allow_remote_namespaces: bool = False
    """The backend's setting: the job may fetch the remote namespaces its validation accepted."""
    namespace_timeout: float = 10.0


@dataclass(frozen=True)
class Outcome:
    """How a finished child ended."""

    ok: bool
    assets: dict[str, Any]
    usage: dict[str, Any]
    message: str | None = None


class JobWorker:
    """The child process of one job, seen from the parent.

    The child is a fresh interpreter (``python -m openeo_upscale.backend.engine.worker SPEC``),
    not a `multiprocessing` child: that would re-import the parent's main module, which a test,
    a notebook or an embedding application may not guard.
    """

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self._process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> JobWorker:
        """Start the child; returns self."""
        work = _work_folder(self.spec.folder)
        work.mkdir(parents=True, exist_ok=True)
        (work / OUTCOME_FILE).unlink(missing_ok=True)
        spec_path = work / SPEC_FILE
        spec_path.write_text(json.dumps(asdict(self.spec)), encoding="utf-8")
        with (work / LOG_FILE).open("wb") as log_file:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(spec_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
            )
        self.started = time.monotonic()
        return self

    @property
    def alive(self) -> bool:
        """Whether the child still runs."""
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """End the child now (terminate, then kill after `KILL_GRACE_SECONDS`)."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(KILL_GRACE_SECONDS)

    def outcome(self) -> Outcome | None:
        """The outcome once the child has ended (None while it runs)."""
        if self._process is None or self._process.poll() is None:
            return None
        path = _work_folder(self.spec.folder) / OUTCOME_FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            code = self._process.returncode
            if code is not None and code < 0:
                why = f"the job's process was killed by signal {-code}"
            else:
                why = f"the job's process ended (exit code {code}) without reporting an outcome"
            if self.spec.memory_limit_mb:
                why += f"; it may have exceeded its memory limit of {self.spec.memory_limit_mb} MB"
            return Outcome(ok=False, assets={}, usage={}, message=why)
        return Outcome(ok=bool(doc.get("ok")), assets=doc.get("assets") or {}, usage=doc.get("usage") or {},
                       message=doc.get("message"))


def _work_folder(folder: str | Path) -> Path:
    return Path(folder) / WORK_FOLDER


def _main(spec_doc: dict[str, Any]) -> None:
    """The child: limit memory, evaluate, write the outcome. Never raises."""
    spec = JobSpec(**{**spec_doc, "job_extent": tuple(spec_doc["job_extent"]),
                      "udp_dirs": tuple(spec_doc["udp_dirs"])})
    began = time.process_time()
    if spec.memory_limit_mb:
        limit = spec.memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    usage: dict[str, Any] = {"input_pixels": 0}
    try:
        assets = _evaluate(spec, usage)
        doc: dict[str, Any] = {"ok": True, "assets": assets}
    except MemoryError:
        doc = {"ok": False, "message": f"The job exceeded its memory limit of {spec.memory_limit_mb} MB."}
    except Exception as exc:  # reported to the user through the job's error log
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        doc = {"ok": False, "message": message}
        _log.debug("job %s failed:\n%s", spec.job_id, traceback.format_exc())
    rusage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = time.process_time() - began
    doc["usage"] = {
        "cpu": {"value": round(cpu, 3), "unit": "cpu-seconds"},
        "memory": {"value": round(rusage.ru_maxrss / 1024.0 * max(cpu, 0.001), 3), "unit": "mb-seconds"},
        "max_memory": {"value": round(rusage.ru_maxrss / 1024.0, 1), "unit": "mb"},
        "input_pixel": {"value": round(float(usage.get("input_pixels", 0)) / 1e6, 3), "unit": "mega-pixel"},
    }
    work = _work_folder(spec.folder)
    temporary = work / (OUTCOME_FILE + ".part")
    temporary.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(temporary, work / OUTCOME_FILE)


def _evaluate(spec: JobSpec, usage: dict[str, Any]) -> dict[str, Any]:
    from openeo_upscale.backend.engine import Evaluator
    from openeo_upscale.backend.engine.output import ResultWriter
    from openeo_upscale.backend.udp import UdpResolver
    from openeo_upscale.udp import UDP_DIR

    resolver = UdpResolver((*(Path(d) for d in spec.udp_dirs), UDP_DIR),
                           allow_http=spec.allow_remote_namespaces, http_timeout=spec.namespace_timeout)

    def lookup(process_id: str, namespace: str | None) -> Mapping[str, Any] | None:
        if namespace in (None, "user") and process_id in spec.user_processes:
            return spec.user_processes[process_id]
        if namespace and namespace not in ("user", "backend"):
            return resolver.resolve(namespace, process_id)
        return resolver.by_name(process_id) if namespace is None else None

    writer = ResultWriter(Path(spec.folder))
    url_policy = {"allow_remote": spec.allow_remote_namespaces, "timeout": spec.namespace_timeout,
                  "private_dirs": [str(Path(spec.folder).parent)]}  # load_stac/load_url: no job results
    services = {"job_extent": spec.job_extent, "results": writer, "usage": usage, "url_policy": url_policy}
    evaluator = Evaluator(udp_lookup=lookup, services=services)
    result = evaluator.evaluate(spec.process["process_graph"])
    if not writer.assets:
        # As on Copernicus Data Space: a batch job whose graph does not end in save_result gets
        # its result cube saved as GeoTIFF.
        import xarray as xr

        if not isinstance(result, xr.DataArray):
            raise RuntimeError("The process graph gave no data cube to save: end it with save_result.")
        writer.save(result, "GTiff")
    return writer.assets


if __name__ == "__main__":
    _main(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
