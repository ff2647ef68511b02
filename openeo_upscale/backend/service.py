"""The state and services behind one running local backend, for its routes to use.

`Backend` opens the state database and builds the services on it: accounts (`Authenticator`),
stored processes (`ProcessGraphStore`), batch jobs (`JobService`), UDP namespaces
(`UdpResolver`) and process-graph checks (`GraphValidator`). They all take the time from the
one clock it is given, as do its signed asset links.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

from openeo_upscale.backend import errors as e
from openeo_upscale.backend.auth import Authenticator
from openeo_upscale.backend.config import BackendConfig, Mode
from openeo_upscale.backend.jobs import Clock, JobService
from openeo_upscale.backend.process_graphs import ProcessGraphStore
from openeo_upscale.backend.state import open_state, signing_key
from openeo_upscale.backend.udp import UdpResolver
from openeo_upscale.backend.validation import GraphValidator
from openeo_upscale.udp import UDP_DIR


class Backend:
    """The state and services behind one running API."""

    def __init__(self, config: BackendConfig, clock: Clock = time.time) -> None:
        self.config = config
        self.clock = clock
        """Seconds since the epoch, for tokens, jobs and the expiry of signed asset links."""
        self.engine = open_state(config.state_dir)
        self.auth = Authenticator(self.engine, config, clock)
        self.process_graphs = ProcessGraphStore(self.engine)
        self.jobs = JobService(self.engine, config, config.state_dir / "results", clock, self.process_graphs)
        self.resolver = UdpResolver((*config.udp_dirs, UDP_DIR), allow_http=config.allow_remote_namespaces,
                                    http_timeout=config.namespace_timeout)
        self.available: frozenset[str] | None = None
        """Real mode: the processes the engine implements (the others are refused)."""
        if config.mode is Mode.REAL:
            from openeo_upscale.backend.engine import implemented

            self.available = frozenset(implemented())
        self.validator = GraphValidator(self.resolver, only=self.available)
        self.key = signing_key(self.engine)

    def problems(self, user: str, process: Mapping[str, Any],
                 own_udp_url: str | None = None) -> list[e.ApiError]:
        """Every problem of `process` for `user`; `own_udp_url` is where this backend serves its
        UDP folders as the request reached it (a namespace there is read from the folders)."""
        return self.validator.errors(
            process, lambda pid: self.process_graphs.get(user, pid),
            lambda namespace, pid: self.resolver.resolve(namespace, pid, own_udp_url=own_udp_url))

    def validate(self, user: str, process: Mapping[str, Any], own_udp_url: str | None = None) -> None:
        """Raise the first problem of `process` for `user`."""
        found = self.problems(user, process, own_udp_url)
        if found:
            raise found[0]

    def sign(self, job_id: str, name: str, expires: int) -> str:
        """The signature of a link to asset `name` of a job, valid until `expires`."""
        msg = f"{job_id}/{name}/{expires}".encode()
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()[:32]
