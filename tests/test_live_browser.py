"""``serve --live`` on a sweep that is running, and the layout on a laptop screen, in headless Chromium.

The sweep is real: a tiny network on a subset of MNIST, on a local Dask
cluster of one worker, as ``cortex-fa sweep`` runs it. The page is opened
before the sweep starts, and what it shows is compared through the Bokeh
document (data source sizes, titles) at two moments, with no reload between.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_app_browser import CHROMIUM, MODELS, _require, chromium, plotted, wait_for_title
from test_security import free_port, stop, wait_listening

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
# Wide enough that a run takes seconds even on an idle machine (a 128-unit column
# finished all four runs before the page had redrawn once; the page redraws every 2 s).
SWEEP = ["--rules", "bp,fa", "--depths", "1", "--width", "1000", "--seeds", "0,1", "--epochs", "6",
         "--train-subset", "6000", "--batch-size", "10", "--probe-size", "100", "--workers", "1",
         "--quiet"]


@pytest.fixture(scope="module")
def browser():
    import os

    _require(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _require(False, "playwright (python) is not installed")
    yield from chromium()


def start(cmd, log: Path, env=None) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "cortex_fa.cli", *cmd], stdout=out,
                                stderr=subprocess.STDOUT, env=env)


def status_text(page) -> str:
    return page.evaluate("""() => { const walk = (root) => { for (const el of root.querySelectorAll('*')) {
        if (el.classList && el.classList.contains('cfa-status')) return el.textContent;
        if (el.shadowRoot) { const t = walk(el.shadowRoot); if (t) return t; } } return null; };
        return walk(document); }""") or ""


def runs_done(text: str) -> int:
    m = re.search(r"runs done (\d+)", text)
    return int(m.group(1)) if m else -1


def longest(page, column: str) -> int:
    return max((len(a) for a in plotted(page, column)), default=0)


def drawn(page, column: str) -> tuple:
    """What the page plots of ``column``: (length, sum of the finite values) per source.

    Curves are per rule, so once a rule's first run has finished, its later
    runs change the curve's values, not its length: compare this, not lengths.
    """
    return tuple(sorted((len(a), round(sum(v for v in a if v is not None and math.isfinite(v)), 6))
                        for a in plotted(page, column)))


def wait_changed(page, column: str, before: tuple, timeout: float) -> tuple:
    deadline = time.monotonic() + timeout
    while (now := drawn(page, column)) == before and time.monotonic() < deadline:
        time.sleep(1)
    return now


def test_live_page_grows_while_a_sweep_runs(browser, tmp_path):
    import os

    run_dir, port = tmp_path / "study.runs", free_port()
    server = start(["serve", "--live", str(run_dir), "--port", str(port), "--no-show"], tmp_path / "serve.log")
    sweep = None
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    try:
        wait_listening(port, server, tmp_path / "serve.log", timeout=300)
        page.goto(f"http://127.0.0.1:{port}/", timeout=600_000)  # a session takes long on a busy machine
        page.get_by_text("waiting for results", exact=False).first.wait_for(timeout=60_000)
        page.evaluate("() => { window.__cfa_same_page = 1 }")  # gone if the page reloads
        env = {**os.environ, "CORTEX_FA_LIVE_INTERVAL": "0.5"}
        sweep = start(["sweep", *SWEEP, "--out", str(tmp_path / "study.nc")], tmp_path / "sweep.log", env)
        wait_for_title(page, "test_accuracy (depth 1)", timeout=900_000)  # a Dask cluster, MNIST, then a partial file
        # The user picks a metric logged at every step; it must survive every refresh.
        # (a step-0 partial file has no train_loss yet: the option appears with the next one)
        page.locator("select:has(option[value='train_loss'])").first.wait_for(state="attached", timeout=300_000)
        page.locator("select:has(option[value='train_loss'])").first.select_option("train_loss")
        wait_for_title(page, "train_loss (depth 1)", timeout=300_000)
        early_done, early = runs_done(status_text(page)), drawn(page, "train_loss")
        assert 0 <= early_done < 4 and early  # (a partial file of step 0 only has no train_loss yet)
        assert wait_changed(page, "train_loss", early, timeout=300) != early, "the curves never changed"
        deadline = time.monotonic() + 600
        while runs_done(status_text(page)) <= early_done and time.monotonic() < deadline:
            assert sweep.poll() in (None, 0), (tmp_path / "sweep.log").read_text()
            time.sleep(1)
        later = status_text(page)
        assert runs_done(later) > early_done, later
        assert drawn(page, "train_loss") != early and longest(page, "train_loss") > 0
        assert "total 4" in later
        assert page.evaluate("() => window.__cfa_same_page") == 1, "the page was reloaded"
        select = page.locator("select:has(option[value='train_loss'])").first
        assert select.input_value() == "train_loss"  # the selection survived the refreshes
        assert sweep.wait(timeout=600) == 0, (tmp_path / "sweep.log").read_text()
        page.wait_for_function("() => true")  # let the last poll land
        page.get_by_text("finished: no longer refreshing", exact=False).first.wait_for(timeout=60_000)
        assert runs_done(status_text(page)) == 4
    finally:
        page.close()
        if sweep is not None:
            stop(sweep)
        stop(server)


def test_the_depth_study_fits_a_laptop_screen(browser, tmp_path):
    study = ROOT / "docs" / "data" / "depth_study_converged.nc"
    port = free_port()
    server = start(["serve", str(study), "--port", str(port), "--no-show"], tmp_path / "serve.log")
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    try:
        wait_listening(port, server, tmp_path / "serve.log", timeout=300)
        page.goto(f"http://127.0.0.1:{port}/", timeout=600_000)  # a session takes long on a busy machine
        wait_for_title(page, "test_accuracy (depth 7)", timeout=240_000)
        time.sleep(1.0)
        page.screenshot(path=str(tmp_path / "laptop.png"))
        tabs = ["Performance vs depth", "Gap to bp", "Alignment over training", "Alignment map", "Gradient flow"]
        for tab in tabs:
            page.get_by_text(tab, exact=True).first.click()
            # a tab is laid out when first shown (dynamic tabs): wait for its plots, then let them settle
            deadline, boxes = time.monotonic() + 120, []
            while not boxes and time.monotonic() < deadline:
                time.sleep(1.0)
                boxes = [b for b in (c.bounding_box() for c in page.locator("canvas").all() if c.is_visible())
                         if b and b["width"] > 50 and b["height"] > 50]
            time.sleep(1.0)
            boxes = [b for b in (c.bounding_box() for c in page.locator("canvas").all() if c.is_visible())
                     if b and b["width"] > 50 and b["height"] > 50]
            assert boxes, f"tab {tab} shows no plot"
            low = max(b["y"] + b["height"] for b in boxes)
            wide = max(b["x"] + b["width"] for b in boxes)
            assert low <= 768 and wide <= 1366, f"tab {tab}: plots reach ({wide:.0f}, {low:.0f})"
        page.get_by_text("Synapses", exact=True).first.click()
        page.get_by_text("holds no W/B snapshots", exact=False).first.wait_for(timeout=10_000)
    finally:
        page.close()
        stop(server)


def test_the_synapse_tab_draws_scatters_and_receptive_fields_with_ink(browser, tmp_path):
    """A real-MNIST bp/fa study with snapshots: the tab shows clouds and fields, the player moves them."""
    from PIL import Image, ImageStat

    study = tmp_path / "snap.nc"
    done = subprocess.run([sys.executable, "-m", "cortex_fa.cli", "sweep", "--rules", "bp,fa", "--depths", "2",
                           "--width", "64", "--seeds", "0", "--epochs", "1", "--train-subset", "3000",
                           "--probe-size", "100", "--snapshots", "400", "--workers", "1", "--quiet",
                           "--out", str(study)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    port = free_port()
    server = start(["serve", str(study), "--port", str(port), "--no-show"], tmp_path / "serve.log")
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    try:
        wait_listening(port, server, tmp_path / "serve.log", timeout=300)
        page.goto(f"http://127.0.0.1:{port}/", timeout=600_000)
        wait_for_title(page, "test_accuracy (depth 2)", timeout=240_000)
        page.get_by_text("Synapses", exact=True).first.click()
        wait_for_title(page, "bp, depth 2, seed 0: column 2", timeout=60_000)
        sizes = [len(a) for a in plotted(page, "forward")]
        assert sizes and max(sizes) == 400  # the sampled pairs of a column, all drawn
        assert page.evaluate(f"() => ({MODELS})().some(m => m.type == 'Image')")  # receptive fields
        time.sleep(1.0)
        shot = tmp_path / "synapses.png"
        page.screenshot(path=str(shot))
        boxes = [b for b in (c.bounding_box() for c in page.locator("canvas").all() if c.is_visible())
                 if b and b["width"] > 100 and b["height"] > 100]
        assert len(boxes) >= 3, boxes  # three column scatters at least (receptive fields may be below)
        image = Image.open(shot).convert("RGB")
        for b in boxes[:3]:
            crop = image.crop((int(b["x"]), int(b["y"]), int(min(b["x"] + b["width"], 1366)),
                               int(min(b["y"] + b["height"], 768))))
            assert ImageStat.Stat(crop.convert("L")).var[0] > 50, f"an empty plot at {b}"
        page.mouse.wheel(0, 700)
        time.sleep(1.0)
        page.screenshot(path=str(shot))
        fields = [b for b in (c.bounding_box() for c in page.locator("canvas").all() if c.is_visible())
                  if b and b["width"] > 100 and b["height"] > 100 and b["y"] >= 0]
        image = Image.open(shot).convert("RGB")
        inked = [len(image.crop((int(b["x"]), int(b["y"]), int(min(b["x"] + b["width"], 1366)),
                                 int(min(b["y"] + b["height"], 768)))).getcolors(1 << 16) or ()) > 50
                 for b in fields]
        assert any(inked), "no receptive-field image with colour"
        page.mouse.wheel(0, -700)
        page.locator("button.first").first.click()  # the epoch player drives the tab
        wait_for_title(page, "column 2\nstep 0 (", timeout=60_000)
    finally:
        page.close()
        stop(server)
