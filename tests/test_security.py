"""Security of ``cortex-fa serve`` and of the input paths.

* The server binds 127.0.0.1 unless told otherwise; a non-loopback ``--address``
  needs ``--allow-websocket-origin`` and prints a warning (tested on the argument
  path, with ``panel.serve`` replaced: nothing is ever exposed by these tests).
* A websocket from a foreign origin is refused (no cross-site use of a local server).
* No URL reaches the file system: traversal paths and query arguments against a
  running server return nothing of the files next to the served one, nor of /etc/passwd.
* HTML in NetCDF variable names, dimension names, coordinate values, attributes and
  file names stays text in a real browser (tests/test_app_browser.py covers
  attributes only, so names are covered here).
* No pickle, eval, exec, yaml.load, allow_pickle=True or shell=True in the package.

Only 127.0.0.1 traffic; every server is stopped in a ``finally`` block.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import tokenize
from pathlib import Path

import pytest

import cortex_fa

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync"]
IN_CI = os.environ.get("CI") == "true"
PACKAGE = Path(cortex_fa.__file__).parent

# Payloads: each one, if it ever runs, sets its own flag on window.
DIM = 'lr<img src=x onerror="window.__cfa_xss_dim=1">'
VAR = 'v<svg onload="window.__cfa_xss_var=1">'
RULE = '<img src=x onerror="window.__cfa_xss_rule=1">'
VALUE = '<img src=x onerror="window.__cfa_xss_value=1">'
ATTR = "<script>window.__cfa_xss_attr=1</script>"
LONG_NAME = '<img src=x onerror="window.__cfa_xss_long_name=1">'
FILE = "<img src=x onerror=window.__cfa_xss_file=1>.nc"  # a legal file name: no slash
FLAGS = ("dim", "var", "rule", "value", "attr", "long_name", "file")


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "cortex_fa.cli", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"cortex-fa serve exited with {proc.returncode}:\n{log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"cortex-fa serve did not listen within {timeout:.0f} s:\n{log.read_text()}")


def payload_study():
    """A valid study whose names, coordinate values and attributes carry HTML payloads."""
    sys.path.insert(0, str(Path(__file__).parent))
    from factories import make_study_dataset

    study = make_study_dataset(rules=("bp", "fa"), depths=(1, 2), seeds=(0,), epochs=2)
    study = study.assign_coords(rule=["<b>bp</b>", RULE])
    study = study.expand_dims({DIM: [VALUE, "plain"]})  # an extra swept dimension
    study[VAR] = study["test_accuracy"]
    study["test_accuracy"].attrs["long_name"] = LONG_NAME
    study.attrs.update(created=ATTR, backend=ATTR, data_sha256=ATTR, swept=json.dumps([DIM]),
                       sweep=json.dumps({"note": ATTR + VALUE}))
    return study


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``cortex-fa serve`` on a free loopback port, run from a folder with files it must not serve."""
    from factories import make_study_dataset

    from cortex_fa.results import save_results

    d = tmp_path_factory.mktemp("served")
    save_results(make_study_dataset(rules=("bp", "fa"), depths=(1, 2), seeds=(0,), epochs=1), d / "study.nc")
    save_results(payload_study(), d / FILE)
    secret = secrets.token_hex(16)
    (d / "secret.txt").write_text(f"SECRET {secret}\n")
    save_results(make_study_dataset(rules=("fa",), depths=(1,), seeds=(0,), epochs=1), d / "other.nc")
    port, log = free_port(), d / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cli("serve", "study.nc", FILE, "--port", str(port)), cwd=d, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc, log)
        yield {"port": port, "proc": proc, "dir": d, "secret": secret, "log": log}
    finally:
        stop(proc)


def get(port: int, path: str, headers=None, timeout: float = 60) -> tuple[int, bytes]:
    """A raw GET: the path goes on the wire exactly as given (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# -- binding and origins ------------------------------------------------------------------

def test_serve_listens_on_loopback_only_by_default(server):
    import psutil

    listening = [c.laddr for c in psutil.Process(server["proc"].pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.5", "lab.example.org"])
def test_non_loopback_address_is_refused_without_the_explicit_flag(address, tmp_path):
    from factories import make_run_dataset

    from cortex_fa.results import save_results

    save_results(make_run_dataset(), tmp_path / "run.nc")
    done = subprocess.run(cli("serve", "run.nc", "--address", address, "--port", str(free_port())), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"--address {address}" in err and "--allow-websocket-origin" in err


def test_explicit_flag_warns_before_anything_is_loaded(tmp_path):
    """With the flag: a warning first; a bad file still stops it before any socket is opened."""
    (tmp_path / "junk.nc").write_bytes(b"not netcdf")
    done = subprocess.run(cli("serve", "junk.nc", "--address", "0.0.0.0", "--allow-websocket-origin",
                              "lab.example.org:5006", "--port", str(free_port())),
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 2, done.stderr
    assert "warning" in lines[0] and "0.0.0.0" in lines[0] and "no authentication" in lines[0]
    assert lines[1].startswith("cortex-fa: error:") and "junk.nc" in lines[1]


def _serve_args(monkeypatch, argv) -> dict:
    """Run ``cortex-fa serve`` in-process with panel.serve replaced: the arguments it would bind with."""
    import panel as pn

    from cortex_fa.cli import main

    seen = {}
    monkeypatch.setattr(pn, "serve", lambda app, **kw: seen.update(kw, app=app))
    assert main(argv) == 0
    return seen


def test_default_origins_are_this_machine_only(monkeypatch, tmp_path, capsys):
    from factories import make_run_dataset

    from cortex_fa.results import save_results

    save_results(make_run_dataset(), tmp_path / "run.nc")
    kw = _serve_args(monkeypatch, ["serve", str(tmp_path / "run.nc"), "--port", "5999"])
    assert kw["address"] == "127.0.0.1" and kw["port"] == 5999 and kw["show"] is False
    assert sorted(kw["websocket_origin"]) == ["127.0.0.1:5999", "localhost:5999"]
    assert "warning" not in capsys.readouterr().err


def test_exposed_address_with_the_flag_warns_and_allows_only_the_named_origin(monkeypatch, tmp_path, capsys):
    from factories import make_run_dataset

    from cortex_fa.results import save_results

    save_results(make_run_dataset(), tmp_path / "run.nc")
    kw = _serve_args(monkeypatch, ["serve", str(tmp_path / "run.nc"), "--address", "0.0.0.0", "--port", "5999",
                                   "--allow-websocket-origin", "lab.example.org:5999"])
    assert kw["address"] == "0.0.0.0"
    assert sorted(kw["websocket_origin"]) == ["127.0.0.1:5999", "lab.example.org:5999", "localhost:5999"]
    assert "*" not in kw["websocket_origin"]
    err = capsys.readouterr().err
    assert "warning" in err and "0.0.0.0:5999" in err and "no authentication" in err


async def _ws_first_frame(port: int, token: str, origin: str | None) -> str:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    request = HTTPRequest(f"ws://127.0.0.1:{port}/ws", headers={"Origin": origin} if origin else {})
    conn = await websocket_connect(request, subprotocols=["bokeh", token])
    try:
        return await asyncio.wait_for(conn.read_message(), 60)
    finally:
        conn.close()


def session_token(port: int) -> str:
    status, body = get(port, "/")
    assert status == 200, body[:500]
    match = re.search(rb'"token"\s*:\s*"([^"]+)"', body)
    assert match, "no session token in the page"
    return match.group(1).decode()


def test_websocket_from_a_foreign_origin_is_refused(server):
    from tornado.httpclient import HTTPClientError

    port = server["port"]
    frame = asyncio.run(_ws_first_frame(port, session_token(port), f"http://127.0.0.1:{port}"))
    assert json.loads(frame)["msgtype"] == "ACK"
    with pytest.raises(HTTPClientError) as info:
        asyncio.run(_ws_first_frame(port, session_token(port), "http://evil.example"))
    assert info.value.code == 403


# -- no URL reaches the file system -------------------------------------------------------

TRAVERSALS = [
    "/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "//etc/passwd",
    "/static/../../../../../../etc/passwd",
    "/static/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/extensions/panel/../../../../../../../../etc/passwd",
    "/static/extensions/panel/..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static/js/..%5c..%5c..%5c..%5cetc%5cpasswd",
    "/components/os/path/_resources/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/components/cortex_fa.viz.app/Dashboard/__css__/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/secret.txt", "/other.nc", "/study.nc", "/static/secret.txt", "/static/../secret.txt",
    "/?file=/etc/passwd", "/?file=secret.txt", "/?path=../secret.txt&files=other.nc",
    "/?CORTEX_FA_FILES=/etc/passwd", "/?args=/etc/passwd",
    "/autoload.js?bokeh-autoload-element=x&bokeh-app-path=/../../etc/passwd&bokeh-absolute-url=http://127.0.0.1",
    "/metadata?file=/etc/passwd",
    "/favicon.ico/../../../../etc/passwd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_url_reaches_the_file_system(server, path):
    status, body = get(server["port"], path)
    assert status < 500, f"{path}: {status}\n{body[:300]!r}"
    for secret in (b"root:x:0:0", b"root:", server["secret"].encode(), b"\x89HDF", b"CDF\x01", b"CDF\x02"):
        assert secret not in body, f"{path} leaked {secret!r}"


def test_no_url_runs_the_command_line_inside_the_server(server):
    before = server["log"].read_text().count("cortex-fa serve:")
    status, _ = get(server["port"], "/components/cortex_fa.cli.__main__/x/__css__/y")
    time.sleep(0.5)
    assert server["log"].read_text().count("cortex-fa serve:") == before
    assert status in (403, 404)


def test_the_server_still_serves_after_the_probes(server):
    status, body = get(server["port"], "/")
    assert status == 200 and b"<html" in body.lower()


# -- no unsafe deserialisation or dynamic code on input paths -------------------------------

PATTERNS = {
    "pickle": r"\b(c?pickle|cloudpickle|dill|shelve|marshal)\b",
    "eval": r"\beval\s*\(",
    "exec": r"\bexec\s*\(",
    "yaml.load": r"\byaml\.(load|unsafe_load)\s*\(",
    "allow_pickle": r"allow_pickle\s*=\s*True",
    "shell=True": r"shell\s*=\s*True",
    "os.system": r"\bos\.(system|popen)\s*\(",
    "import_module": r"\bimport_module\s*\(|\b__import__\s*\(",
    "runpy": r"\brunpy\.run_(path|module)\s*\(",
    "joblib/torch load": r"\b(joblib|torch)\.load\s*\(",
}
# (file relative to the package, pattern name) -> why this hit is safe. Keep it short and true:
# a stale entry fails the test so the list never outgrows the code.
ALLOWED = {
    ("cli/__init__.py", "import_module"): "imports cortex_fa.cli.<name> for the fixed SUBCOMMANDS tuple only",
    ("backends/__init__.py", "import_module"): "module path from the backend registry; the name is validated "
                                               "against config.BACKENDS first",
    # sweep --preload: the local user names their own code to run, exactly as with `python my_rules.py`;
    # only the command line reaches it (no route of the app server does), and --scheduler refuses it
    ("cluster.py", "import_module"): "cortex-fa sweep --preload MODULE: the user's own module, by design",
    ("cluster.py", "runpy"): "cortex-fa sweep --preload FILE.py: the user's own file, by design",
}


def code_only(path: Path) -> list[tuple[int, str]]:
    """Source lines with comments and string literals blanked (docstrings may mention pickle)."""
    lines = path.read_text().splitlines()
    blank = {i: list(line) for i, line in enumerate(lines, 1)}
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type in (tokenize.COMMENT, tokenize.STRING) or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            (r0, c0), (r1, c1) = tok.start, tok.end
            for r in range(r0, r1 + 1):
                lo = c0 if r == r0 else 0
                hi = c1 if r == r1 else len(blank[r])
                blank[r][lo:hi] = " " * (hi - lo)
    return [(i, "".join(chars)) for i, chars in blank.items()]


def test_no_pickle_eval_exec_or_shell_in_the_package():
    hits, used = [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for lineno, code in code_only(path):
            for name, pattern in PATTERNS.items():
                if re.search(pattern, code):
                    if (rel, name) in ALLOWED:
                        used.add((rel, name))
                    else:
                        hits.append(f"{rel}:{lineno}: {name}: {code.strip()}")
    assert not hits, "unsafe calls (add a reason to ALLOWED only if the input is not user-controlled):\n" + "\n".join(hits)
    assert used == set(ALLOWED), f"stale ALLOWED entries, remove them: {sorted(set(ALLOWED) - used)}"


def test_results_are_read_with_the_netcdf4_engine_only():
    """xarray guesses an engine when none is given; every read in the package names netcdf4."""
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for lineno, code in code_only(path):
            if re.search(r"\b(open_dataset|open_mfdataset|load_dataset|open_dataarray)\s*\(", code):
                calls.append((path.relative_to(PACKAGE).as_posix(), lineno, "engine=" in code))
    assert calls and all(ok for *_, ok in calls), [c for c in calls if not c[2]]


# -- HTML in names stays text in a real browser ---------------------------------------------

def _require(ok: bool, why: str) -> None:
    if not ok:
        (pytest.fail if IN_CI else pytest.skip)(why)


MODELS = "() => (window.Bokeh && Bokeh.documents.length) ? [...Bokeh.documents[0].all_models] : []"


@pytest.mark.browser
def test_html_in_names_values_attrs_and_file_names_stays_text(server):
    _require(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "playwright (python) is not installed")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            dialogs = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"http://127.0.0.1:{server['port']}/")
            page.wait_for_function(f"() => ({MODELS})().some(m => m.type == 'Title')", timeout=90_000)
            # The payload file's tab: its title is the file name, shown as text.
            page.get_by_text(FILE, exact=True).first.click(timeout=30_000)
            # Its extra-dimension selector is labelled with the dimension name, as text.
            page.get_by_text(DIM, exact=True).first.wait_for(state="attached", timeout=60_000)
            page.get_by_text("window.__cfa_xss_attr=1", exact=False).first.wait_for(state="attached", timeout=30_000)
            # Switch the swept dimension: every view is rebuilt with the payload names in it.
            page.locator("select:has(option[value='plain'])").first.select_option("plain")
            time.sleep(2.0)
            flags = page.evaluate(f"() => {json.dumps(list(FLAGS))}.filter(f => window['__cfa_xss_' + f] !== undefined)")
            assert flags == [], f"payloads ran: {flags}"
            assert dialogs == []
            assert page.locator("img[src='x']").count() == 0
            assert page.locator("svg[onload]").count() == 0
            assert page.locator("script:has-text('__cfa_xss')").count() == 0
            # Control: the same strings inserted as HTML do run in this browser, so the
            # absence of flags above means "escaped", not "payloads that never fire".
            control = browser.new_page()
            control.set_content("".join((DIM[2:], VAR[1:], RULE, VALUE, LONG_NAME, FILE[:-3])))
            control.wait_for_function("() => window.__cfa_xss_dim && window.__cfa_xss_var && window.__cfa_xss_file",
                                      timeout=10_000)
        finally:
            browser.close()


def test_header_and_live_status_line_keep_payloads_as_text(tmp_path):
    # The header (file name, rules, depths, status counts) and the live status line
    # (watched path, runs, steps) are HTML panes: every file-borne string must be escaped.
    pytest.importorskip("panel")
    from cortex_fa.viz.layout import Header
    from cortex_fa.viz.live import LiveSource
    from cortex_fa.viz.live_app import LiveApp

    header = Header(payload_study(), FILE)
    header.set_status(f"runs done 1 {ATTR}")
    live = LiveApp(LiveSource(tmp_path / RULE, min_age=0))  # a directory a sweep is about to fill
    for html_text in (header.pane.object, live.status.object):
        assert "<img" not in html_text and "<script" not in html_text and "<svg" not in html_text
    assert "&lt;img src=x onerror=window.__cfa_xss_file=1&gt;.nc" in header.pane.object
    assert "&lt;script&gt;" in header.pane.object  # shown, as text
    assert "&lt;img src=x onerror=&quot;window.__cfa_xss_rule=1&quot;&gt;" in live.status.object
