"""``cortex-fa serve`` driven by headless Chromium (Debian's, never a downloaded one).

The server runs as a subprocess on a free loopback port and the tests share
one page (one Bokeh session), in file order. Set ``CORTEX_FA_APP_SCREENSHOT=path.png``
to keep the screenshot (``docs/img/app.png`` is made this way).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from test_security import free_port, wait_listening

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
IN_CI = os.environ.get("CI") == "true"


def _require(ok: bool, why: str) -> None:
    # Locally a missing browser is a skip; in CI it must be a failure, not a silent pass.
    if not ok:
        (pytest.fail if IN_CI else pytest.skip)(why)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _require(False, "playwright (python) is not installed")
    from factories import make_study_dataset
    from test_app import payload_run

    from cortex_fa.results import save_results

    d = tmp_path_factory.mktemp("serve")
    study = make_study_dataset(rules=("bp", "fa"), depths=(1, 2), seeds=(0, 1), epochs=2)
    save_results(study, d / "study.nc")
    save_results(payload_run(), d / "payload.nc")
    port, log = free_port(), d / "server.log"
    cmd = [sys.executable, "-m", "cortex_fa.cli", "serve", str(d / "study.nc"),
           str(d / "payload.nc"), "--port", str(port), "--no-show"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_listening(port, proc, log)
        yield {"url": url, "study": study}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chromium():
    """Debian's Chromium, headless, through Playwright (a generator: yields the browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def browser(server):
    yield from chromium()


@pytest.fixture(scope="module")
def page(browser, server):
    # One page (one Bokeh session) for the module: a session takes seconds to build.
    # The tests run in file order; the payload tab is opened last.
    page = browser.new_page(viewport={"width": 1500, "height": 1200})
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(server["url"])
    wait_for_title(page, "test_accuracy (depth 2)")
    yield page
    page.close()


# JavaScript over the page's Bokeh document: the models behind what is drawn.
MODELS = "() => (window.Bokeh && Bokeh.documents.length) ? [...Bokeh.documents[0].all_models] : []"


def wait_for_title(page, text: str, timeout: float = 45_000) -> None:
    page.wait_for_function(
        f"text => ({MODELS})().some(m => m.type == 'Title' && m.text.includes(text))",
        arg=text, timeout=timeout)


def plotted(page, column: str) -> list[list[float]]:
    """Every ColumnDataSource array called ``column`` in the page's document."""
    # ``data`` is a plain object in BokehJS 3.x (a Map in some releases): handle both.
    return page.evaluate(
        f"""col => ({MODELS})().filter(m => m.type == 'ColumnDataSource')
                 .map(m => m.data instanceof Map ? m.data.get(col) : m.data[col])
                 .filter(v => v !== undefined).map(v => Array.from(v))""", column)


def test_metric_change_updates_the_plot_and_the_page_is_not_blank(page, server, tmp_path):
    from PIL import Image, ImageStat

    assert plotted(page, "test_accuracy") and not plotted(page, "test_loss")
    # The metric <select> is the one offering test_loss (widgets live in shadow DOM,
    # which Playwright's CSS engine pierces).
    page.locator("select:has(option[value='test_loss'])").first.select_option("test_loss")
    wait_for_title(page, "test_loss (depth 2)")
    want = server["study"]["test_loss"].sel(rule="fa", n_hidden=2).mean("seed").values
    want = want[np.isfinite(want)]
    got = [np.asarray(a) for a in plotted(page, "test_loss")]
    assert any(a.shape == want.shape and np.allclose(a, want) for a in got)

    time.sleep(0.5)  # let the canvases paint
    shot = tmp_path / "app.png"
    page.screenshot(path=str(shot), full_page=True)
    image = Image.open(shot).convert("RGB")
    assert ImageStat.Stat(image.convert("L")).var[0] > 200  # not a blank page
    assert len(image.getcolors(maxcolors=1 << 20)) > 200  # plots, not just text
    if os.environ.get("CORTEX_FA_APP_SCREENSHOT"):
        shutil.copy(shot, os.environ["CORTEX_FA_APP_SCREENSHOT"])


def test_epoch_player_moves_the_marker(page):
    span = "() => ({MODELS})().filter(m => m.type == 'Span').map(m => m.location)"
    before = page.evaluate(span.replace("{MODELS}", MODELS))
    page.locator("button.first").first.click()  # the player's "first frame" button
    page.wait_for_function(f"() => ({MODELS})().some(m => m.type == 'Title' && "
                           "m.text.includes('(step 0)'))", timeout=20_000)
    after = page.evaluate(span.replace("{MODELS}", MODELS))
    assert before != after and 1.0 in after  # step 0 sits at updates + 1 = 1


def test_html_payloads_in_file_attributes_stay_text(page):
    page.get_by_text("payload.nc", exact=True).first.click()
    wait_for_title(page, "onerror")  # the payload rule name, drawn as canvas text
    time.sleep(1.0)  # give any injected handler time to fire
    assert page.dialogs == [], "a payload opened a dialog"
    assert page.evaluate("() => window.__cfa_xss") is None, "a payload ran"
    assert page.locator("img[src='x']").count() == 0, "a payload became an <img>"
    # ... and the attributes are still shown, as text.
    page.get_by_text("window.__cfa_xss = 'script'", exact=False).first.wait_for(
        state="attached", timeout=10_000)
