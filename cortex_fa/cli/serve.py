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
    p.add_argument("files", nargs="+", metavar="PATH",
                   help="results NetCDF files, run directories of sweeps, or the NAME.partial.nc "
                        "of a run in progress")
    p.add_argument("--live", action="store_true",
                   help="watch one PATH (a sweep's run directory, or a run's .nc/.partial.nc) and "
                        "refresh the page as runs log steps and finish; the directory may not exist yet")
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


def _panel():
    try:
        import panel as pn

        import cortex_fa.viz.app  # noqa: F401 - the app's own imports (holoviews, bokeh)
    except ImportError as exc:
        raise BackendUnavailable(
            f"the app needs the 'app' extra ({exc.name} missing): pip install 'cortex_fa[app]'"
        ) from exc
    return pn


def add_serve_options(p) -> None:
    """``--serve`` and ``--port`` for ``run`` and ``sweep`` (the app on this machine only)."""
    p.add_argument("--serve", action="store_true",
                   help="also start the live app on 127.0.0.1 and print its URL; it keeps serving "
                        "after training until Ctrl-C")
    p.add_argument("--port", type=int, default=5006, help="port of the app with --serve (default: 5006)")


def start_live(path, args, *, since=None):
    """With ``args.serve``: serve a live view of ``path`` in a thread; return it (else None).

    ``since``: ignore files older than this (a previous run's file about to be overwritten).
    """
    if not getattr(args, "serve", False):
        return None
    args.address, args.allow_websocket_origin, args.show = "127.0.0.1", [], False
    thread = serve(live_session(path, since=since), args, threaded=True)
    print(f"cortex-fa: live app at {url(args)} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    return thread


def keep_serving(thread, args) -> None:
    """After training: keep the app up until Ctrl-C (the caller's exit status is kept)."""
    if thread is None:
        return
    print(f"cortex-fa: training finished; the app at {url(args)} keeps serving (Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        thread.stop()


def live_session(path, since=None):
    """A session factory over one shared :class:`~cortex_fa.viz.live.LiveSource` of ``path``."""
    from cortex_fa.viz.live import LiveSource
    from cortex_fa.viz.live_app import create_live_app

    source = LiveSource(path, since=since)  # ConfigError (exit 2) for a path that can never hold results

    def session():
        return create_live_app(source)
    return session


def serve(session, args, *, threaded: bool = False):
    """Start the Bokeh server for ``session`` on ``args.address``/``args.port``.

    Returns the server thread if ``threaded`` (training runs in the caller),
    else blocks until interrupted.
    """
    pn = _panel()
    origins = websocket_origins(args.address, args.port, getattr(args, "allow_websocket_origin", []))
    return pn.serve(session, port=args.port, address=args.address, websocket_origin=origins,
                    show=getattr(args, "show", False), title="cortex_fa", threaded=threaded,
                    start=True, verbose=False)


def url(args) -> str:
    host = "127.0.0.1" if args.address in ("0.0.0.0", "::") else args.address
    return f"http://{host}:{args.port}/"


def run(args) -> int:
    """Validate inputs, then block serving until interrupted."""
    websocket_origins(args.address, args.port, args.allow_websocket_origin)  # refuse before loading
    _panel()
    if args.live:
        if len(args.files) != 1:
            raise ConfigError(f"serve --live watches one path, got {len(args.files)}")
        session = live_session(args.files[0])
        print(f"cortex-fa serve: watching {args.files[0]} at {url(args)} (Ctrl-C to stop)", flush=True)
    else:
        from cortex_fa.viz.app import create_app
        from cortex_fa.viz.data import load_many

        datasets = load_many(args.files)  # ResultsError before any socket is opened
        print(f"cortex-fa serve: {len(datasets)} file(s) at {url(args)} (Ctrl-C to stop)", flush=True)

        def session():
            # A plain function (Panel calls functions, not partials, per session):
            # every browser session gets its own widgets over the shared Datasets.
            return create_app(datasets)
    serve(session, args)
    return 0
