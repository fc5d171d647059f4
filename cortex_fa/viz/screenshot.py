"""Screenshot of the app for the docs, with a headless Chromium (no download).

::

    python -m cortex_fa.viz.screenshot study.nc docs/img/app.png

serves the app in-process on a free loopback port, opens it with Playwright
and the system's Chromium (``/usr/bin/chromium`` unless ``--chromium``), waits
for the plots and saves a full-page PNG. Needs the ``app`` and ``test`` extras.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def take_screenshot(paths, out, chromium: str = CHROMIUM, width: int = 1366,
                    height: int = 768, timeout: float = 120.0) -> None:
    """Serve ``paths`` and save a screenshot of the first tab to ``out``."""
    import panel as pn
    from playwright.sync_api import sync_playwright

    from cortex_fa.viz.app import create_app
    from cortex_fa.viz.data import load_many

    datasets = load_many(paths)
    port = free_port()

    def session():
        return create_app(datasets)

    server = pn.serve(session, port=port, address="127.0.0.1", show=False, threaded=True,
                      websocket_origin=[f"127.0.0.1:{port}"], verbose=False)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"http://127.0.0.1:{port}/", timeout=timeout * 1000)
            page.wait_for_function(
                "() => window.Bokeh && Bokeh.documents.length && [...Bokeh.documents[0]"
                ".all_models].filter(m => m.type == 'Title').length >= 3",
                timeout=timeout * 1000)
            time.sleep(1.5)  # canvases paint after the document is ready
            page.screenshot(path=str(out), full_page=True)
            browser.close()
    finally:
        server.stop()


def main(argv=None) -> int:
    """Command-line entry: ``FILES... OUT.png``."""
    parser = argparse.ArgumentParser(prog="python -m cortex_fa.viz.screenshot",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", help="results files, then the output PNG")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"browser binary ({CHROMIUM})")
    args = parser.parse_args(argv)
    if len(args.files) < 2:
        parser.error("give at least one results file and the output PNG")
    take_screenshot(args.files[:-1], args.files[-1], chromium=args.chromium)
    print(args.files[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
