"""The `openeo-upscale` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from openeo_upscale.errors import UpscaleError


def _backend_serve(args: argparse.Namespace) -> int:
    from openeo_upscale.backend import BackendConfig, Mode, load_config, serve
    from openeo_upscale.backend.config import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_PASSWORD,
        DEFAULT_USER,
    )

    config = load_config(args.config) if args.config else BackendConfig()
    changes: dict[str, object] = {"host": args.host, "port": args.port}
    if args.mode:
        changes["mode"] = Mode(args.mode)
    if args.state_dir:
        changes["state_dir"] = Path(args.state_dir)
    if args.udp_dir:
        changes["udp_dirs"] = (*config.udp_dirs, *(Path(d) for d in args.udp_dir))
    config = config.replace(**changes)
    url = f"http://{config.host}:{config.port}"
    print(f"openEO local backend ({config.mode.value} mode) at {url}")
    print(f"  state: {config.state_dir.resolve()}")
    if config.user(DEFAULT_USER):
        print(f"  basic auth: {DEFAULT_USER} / {DEFAULT_PASSWORD}")
        print(f"  OIDC client credentials: client id {DEFAULT_CLIENT_ID}, secret {DEFAULT_CLIENT_SECRET}")
    print(f"  python: openeo.connect({url!r}).authenticate_basic('demo', 'demo')", flush=True)
    serve(config)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from openeo_upscale.demo import run_demo

    return run_demo(Path(args.output))


def _grid(args: argparse.Namespace) -> int:
    from openeo_upscale.errors import GridError
    from openeo_upscale.grid import AoiLike, tiles, write_tiles, zone_label
    from openeo_upscale.grid.formats import vector_format

    vector_format(args.output)  # an unusable output name fails before the tiling work
    aoi: AoiLike = args.aoi
    if args.bbox is not None:
        try:
            aoi = tuple(float(v) for v in args.bbox.split(","))
        except ValueError:
            raise GridError(f"--bbox must be W,S,E,N in degrees, got {args.bbox!r}") from None
    grid = tiles(aoi, args.size, overlap=args.overlap, clip=args.clip,
                 min_coverage=args.min_coverage, max_tiles=args.max_tiles)
    path = write_tiles(grid, args.output)
    counts = grid["epsg"].value_counts().sort_index()
    zones = ", ".join(f"{zone_label(int(e))} (EPSG:{e}) {n:,}" for e, n in counts.items())
    print(f"{len(grid):,} tiles of {args.size} m in {len(counts)} zone(s): {zones or '-'}")
    print(f"total {grid['area_km2'].sum():,.1f} km²")
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openeo-upscale", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    backend = sub.add_parser("backend", help="the local openEO backend")
    backend_sub = backend.add_subparsers(dest="backend_command", required=True)
    serve = backend_sub.add_parser("serve", help="serve the local openEO backend")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--mode", choices=["simulated", "real"], help="how jobs compute (default simulated)")
    serve.add_argument("--state-dir", help="folder for jobs, logs and results (default .openeo-local)")
    serve.add_argument("--udp-dir", action="append", help="folder of UDP JSON files (repeatable)")
    serve.add_argument("--config", help="backend TOML file (users, limits, simulation, faults)")
    serve.set_defaults(func=_backend_serve)

    demo = sub.add_parser("demo", help="run a job on the embedded local backend")
    demo.add_argument("-o", "--output", default="demo-output", help="output folder (default demo-output)")
    demo.set_defaults(func=_demo)

    grid = sub.add_parser("grid", help="cut an area of interest into UTM tiles")
    where = grid.add_mutually_exclusive_group(required=True)
    where.add_argument("--bbox", help="W,S,E,N in degrees (write --bbox=W,S,E,N when W is negative)")
    where.add_argument("--aoi", help="AOI file: GeoJSON, GeoPackage, GeoParquet or Shapefile")
    grid.add_argument("--size", type=int, default=5000, help="tile edge in metres (default 5000)")
    grid.add_argument("--overlap", type=int, default=0, help="metres added on every side (default 0)")
    grid.add_argument("--clip", action="store_true", help="clip tile geometries to the AOI")
    grid.add_argument("--min-coverage", type=float, default=0.0,
                      help="drop tiles with a smaller share covered by the AOI (0..1, default 0)")
    grid.add_argument("--max-tiles", type=int, default=2_000_000,
                      help="refuse grids with more tiles (default 2000000)")
    grid.add_argument("-o", "--output", required=True, help="tiles.geojson, tiles.gpkg or tiles.parquet")
    grid.set_defaults(func=_grid)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except UpscaleError as exc:
        print(f"openeo-upscale: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
