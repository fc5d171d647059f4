"""``cortex-fa serve``: the interactive app on a local Bokeh server.

All files are opened and validated before the server starts, so a missing or
foreign file is a one-line error (exit status 2), not a broken page. The
server binds 127.0.0.1 unless told otherwise; exposing it on another address
needs an explicit ``--allow-websocket-origin``.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

from cortex_fa.errors import BackendUnavailable, ConfigError


def register(subparsers) -> None:
    """Add the ``serve`` sub-command."""
    p = subparsers.add_parser(
        "serve", help="explore results files in an interactive browser app",
        description="Serve the cortex_fa dashboard (one tab per file) with Panel/Bokeh.")
    p.add_argument("files", nargs="+", metavar="FILE", help="results NetCDF files")
    p.add_argument("--port", type=int, default=5006, help="port (default: 5006)")
    p.add_argument("--address", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--allow-websocket-origin", action="append", default=[], metavar="HOST:PORT",
                   help="extra origin allowed to connect (repeatable); required for a "
                        "non-loopback --address")
    p.add_argument("--show", action=argparse.BooleanOptionalAction, default=False,
                   help="open a browser tab (default: no)")
    p.set_defaults(func=run)


def is_loopback(address: str) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ::1)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a host name: treat as exposed


def websocket_origins(address: str, port: int, extra) -> list[str]:
    """Origins the server accepts; refuses a non-loopback bind without ``extra``."""
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {port}")
    if not is_loopback(address):
        if not extra:
            raise ConfigError(
                f"--address {address} exposes the app beyond this machine; pass "
                "--allow-websocket-origin HOST:PORT naming the address browsers will use")
        print(f"cortex-fa serve: warning: listening on {address}:{port}, reachable from "
              "other machines; the app has no authentication", file=sys.stderr)
    return [f"127.0.0.1:{port}", f"localhost:{port}", *extra]


def run(args) -> int:
    """Validate inputs, then block serving until interrupted."""
    origins = websocket_origins(args.address, args.port, args.allow_websocket_origin)
    try:
        import panel as pn

        from cortex_fa.viz.app import create_app
        from cortex_fa.viz.data import load_many
    except ImportError as exc:
        raise BackendUnavailable(
            f"the app needs the 'app' extra ({exc.name} missing): pip install 'cortex_fa[app]'"
        ) from exc
    datasets = load_many(args.files)  # ResultsError before any socket is opened
    host = "127.0.0.1" if args.address in ("0.0.0.0", "::") else args.address
    print(f"cortex-fa serve: {len(datasets)} file(s) at http://{host}:{args.port}/ "
          "(Ctrl-C to stop)", flush=True)

    def session():
        # A plain function (Panel calls functions, not partials, per session):
        # every browser session gets its own widgets over the shared Datasets.
        return create_app(datasets)

    pn.serve(session, port=args.port, address=args.address,
             websocket_origin=origins, show=args.show, title="cortex_fa", threaded=False,
             start=True, verbose=False)
    return 0
