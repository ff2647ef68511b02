"""The routes of the local backend's HTTP API, one module per group, each an `APIRouter`.

- :mod:`.discovery`: the well-known document, capabilities, conformance, file formats, UDF
  runtimes, service types, collections, processes and the UDP folders.
- :mod:`.accounts`: HTTP basic and OIDC credentials, the local OIDC provider, ``/me``.
- :mod:`.graphs`: stored process graphs, ``/validation`` and synchronous ``/result``.
- :mod:`.jobs`: batch jobs, their estimates, logs and results.

Each route reaches the `Backend` through ``request.app.state.backend`` (the `BackendDep`
dependency of :mod:`._common`); `openeo_upscale.backend.api.create_app` includes the routers.
"""
