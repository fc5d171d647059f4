"""The documentation builds, and what it tells people to run does run.

* ``mkdocs build --strict`` passes (warnings are errors: broken links, missing
  pages, unresolved API references).
* The built site works offline: no page loads a script, stylesheet, font, image
  or frame from another host (math is typeset by the bundled KaTeX, see
  :func:`offline_problems`), every local resource a page or stylesheet names
  exists, and every formula of the site renders with that KaTeX.
* Every command in a ```bash (or ```sh/```shell/```console) block of README.md
  and docs/**/*.md is either run for real, in a temporary directory per page
  and in page order, or listed in :data:`MAPPED` with the test or CI step
  that covers it. Nothing is silently skipped: a command that matches no
  mapping is run.
* Full-size training commands (``cortex-fa run`` or ``sweep`` without
  ``--train-subset``) are run *shrunk*: ``--train-subset 1000 --epochs 1`` is
  appended, which checks every flag shown without hours of training.
* Each page runs in its own temporary directory holding links to the
  repository's ``examples/``, ``models/`` and ``scripts/`` and copies of
  ``benchmarks/`` and ``docs/data/`` (which commands write into), so repository-relative paths in commands
  work and outputs stay out of the work tree.
* Each page's directory also starts with a small real study under the names
  the docs use for one (``study.nc``, ``depth.nc``, ``depth.quick.nc``,
  ``other.nc``) and a run file ``run.nc``, so a page may show commands on
  "your study" without first producing it; commands on the page that write
  these names replace them.
* Shell variables assigned by a command of their own (``APP=$(...)``) are
  kept for the page's later commands. Servers (``cortex-fa serve``,
  ``panel serve``) are started on a free port, must answer HTTP, and are
  stopped again.
* A fenced block whose first line is ``# NAME.toml`` (or .json/.yaml/.txt) is
  written to the page's directory as NAME, so later commands can use it.
* Every ```python block is run as a script in the same directory, after the
  commands above it on the page (blocks included from files with ``--8<--``
  are the examples, run by tests/test_examples.py).
* Reference pages agree with the code: every CLI flag is in docs/cli.md,
  every results variable and attribute in docs/schema.md, every rule in
  docs/rules.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import html.parser
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
COMMAND_TIMEOUT = 900  # seconds; quick presets on a busy 2-core machine

# Commands shown in the docs that are not run here, each with what covers it.
# ``covered_by`` is a repository path, optionally ``path::name`` naming a test
# function (both are checked to exist).
MAPPED = [
    (r"^bash scripts/demo\.sh\b", "scripts/demo.sh",
     "installs into .venv (its env.sh runs in CI: .ci/run -> scripts/test.sh) and runs the quick depth study; "
     "its data/report/plot commands are run here on other pages, the reproduce step is mapped below"),
    (r"^bash scripts/test\.sh\b", ".ci/run", "the whole suite: this is what CI runs"),
    (r"^python3? -m pytest\b", ".ci/run", "the suite or a part of it: running it from inside the suite would recurse; "
     "CI runs all of it"),
    (r"^python3? -m venv\b", "scripts/env.sh", "environment set-up, done by env.sh in CI"),
    (r"^(\.|source) \.venv/bin/activate$", "scripts/env.sh", "environment set-up, done by env.sh in CI"),
    (r"^(python3? -m )?pip install\b", "scripts/env.sh", "installation, done by env.sh in CI"),
    (r"^python3? examples/(quickstart|depth_study|sign_symmetry|dfa_vs_fa|early_alignment|custom_rule|"
     r"dask_cluster_sweep)\.py\b", "tests/test_examples.py::test_example",
     "every one of these examples runs in quick mode there; --full variants are the full-size experiments"),
    (r"^dask (scheduler|worker)\b.*--tls-", "tests/test_tls.py::test_sweep_on_a_tls_cluster",
     "long-running cluster processes; that test starts a TLS scheduler and worker with these flags"),
    (r"--scheduler\s+tls://", "tests/test_tls.py::test_sweep_on_a_tls_cluster",
     "needs a running TLS Dask cluster; that test makes a CA and a certificate, starts one and sweeps on it "
     "with the DASK_DISTRIBUTED__COMM__TLS__* variables shown"),
    (r"^dask (scheduler|worker)\b", "tests/test_sweep_dask.py::test_external_cluster_survives_a_killed_worker",
     "long-running cluster processes; that test starts a scheduler and workers"),
    (r"^python3? -m benchmarks\.\w+\b(?!.*--quick)", "tests/test_benchmarks.py",
     "a full benchmark takes many minutes; every benchmark module is run on a tiny configuration there"),
    (r"^mkdocs (build|serve)\b", "tests/test_docs.py::test_mkdocs_build_strict",
     "needs the repository's mkdocs.yml; that test builds the site strictly (serve is the same build, live)"),
    (r"--scheduler\s+tcp://", "tests/test_sweep_dask.py::test_external_cluster_survives_a_killed_worker",
     "needs a running external Dask cluster; that test starts one and sweeps on it"),
    (r"^python3? -m build\b|^(python3? -m )?twine check\b",
     "tests/test_packaging.py::test_build_has_no_warnings_and_twine_check_passes",
     "needs the checkout's pyproject.toml; that test builds the sdist and wheel and runs twine check --strict on them"),
    (r"^nox\b", "tests/test_packaging.py::test_noxfile_has_a_session_per_python_and_finds_each_interpreter",
     "minutes per Python (a fresh environment each); that test lists the sessions and finds their interpreters, "
     "the sessions themselves are run by hand"),
    (r"^cortex-fa (run|sweep)\b.*--serve\b", "tests/test_live.py::test_run_serve_trains_and_serves_the_live_app",
     "trains, then keeps the live app serving until Ctrl-C; that test runs it, asks the app for its page, "
     "and sees the run finish while it serves (a sweep's --serve is the same server, tests/test_live_browser.py)"),
    (r"^cortex-fa protocol (select|study) depth_protocol --quick\b|^cortex-fa protocol combine study_d1\.nc "
     r"study_d3\.nc\b|^cortex-fa report protocol_study\.nc\b"
     r"|^cortex-fa protocol cost sel\.nc study_d1\.nc study_d3\.nc$",
     "tests/test_protocol.py::test_protocol_select_study_combine_report_on_mnist",
     "the quick protocol chain on the real MNIST (select at depths 1 and 3, a study chunk per depth, combine, "
     "report, cost): that test runs these very commands and checks what each one writes"),
    (r"^cortex-fa reproduce [a-z0-9_]+", "tests/test_presets.py::test_preset_loads_validates_and_cites_its_source",
     "a preset is a sweep of tens of runs (minutes with --quick, hours without); every preset's full and quick "
     "specs are built and validated there, the sweep machinery is run by tests/test_sweep_dask.py"),
]

# Repository directories linked into each page's working directory (used read-only) ...
LINKED_DIRS = ("examples", "models", "scripts")
# ... and copied into it (commands such as `cortex-fa report FILE` write next to FILE).
COPIED_DIRS = ("docs/data", "benchmarks")

# Training commands without a training subset are run with these flags appended.
SHRINK = (r"^cortex-fa (run|sweep)\b(?!.*--train-subset)", " --train-subset 1000 --epochs 1")

# ```python blocks that are not run: (page name, regex on the block, covered_by, reason).
PY_MAPPED: list[tuple[str, str, str, str]] = [
    ("*", r"--8<--", "tests/test_examples.py::test_example", "included from an example script"),
    ("app.md", r"\bpn\.serve\(", "tests/test_viz.py",
     "starts a Panel server that runs until stopped; create_app is built and driven by the app tests, and "
     "`cortex-fa serve`, which serves the same factory, is run here"),
]

# Names under which each page's directory holds a small real study / run (see the module docstring).
STUDY_NAMES = ("study.nc", "depth.nc", "depth.quick.nc", "other.nc")
RUN_NAMES = ("run.nc",)


# -- extraction ------------------------------------------------------------------------

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)[^\n]*$")


def blocks(path: Path):
    """Yield ``(lang, code, line)`` for every fenced block of a Markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent, start = m["fence"], len(m["indent"]), i + 1
        body = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        yield m["lang"].lower(), "\n".join(body), start


def _strip_comment(line: str) -> str:
    quote = None
    for k, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k].rstrip()
    return line.rstrip()


def commands(lang: str, code: str):
    """Logical shell commands of a block: continuation lines joined, comments dropped."""
    out, pending = [], ""
    for raw in code.splitlines():
        line = raw.rstrip() if not pending else raw.strip()
        if lang == "console":
            if not line.startswith("$ ") and not pending:
                continue  # output
            line = line[2:] if line.startswith("$ ") else line
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = _strip_comment(pending + line).strip()
        pending = ""
        if line:
            out.append(line)
    return out


_FILE_HEADER = re.compile(r"^\s*(#|//)\s*(?P<name>[\w.-]+\.(toml|json|yaml|yml|txt))\s*$")


def page_items(path: Path):
    """Commands, python blocks and files to write of a page, in document order."""
    items = []
    for lang, code, line in blocks(path):
        header = _FILE_HEADER.match(code.splitlines()[0]) if code.strip() and lang not in SHELL_LANGS else None
        if header and lang not in ("python", "py", "python3"):
            items.append(("file", f"{header['name']}\n{code}", line))
        elif lang in SHELL_LANGS:
            items += [("sh", cmd, line) for cmd in commands(lang, code)]
        elif lang in ("python", "py", "python3"):
            items.append(("py", code, line))
    return items


def all_items():
    return [(page, *item) for page in PAGES for item in page_items(page)]


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


# -- classification --------------------------------------------------------------------

def mapping_for(cmd: str):
    for pattern, covered_by, reason in MAPPED:
        if re.search(pattern, cmd):
            return covered_by, reason
    return None


def py_mapping_for(page: Path, code: str):
    for name, pattern, covered_by, reason in PY_MAPPED:
        if name in ("*", page.name) and re.search(pattern, code):
            return covered_by, reason
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONUNBUFFERED"] = "1"
    env["BOKEH_BROWSER"] = "none"
    return env


def _shorten(text: str, n: int = 1500) -> str:
    return text if len(text) <= n else "...\n" + text[-n:]


def run_shell(cmd: str, cwd: Path, prelude: str = "") -> str | None:
    """Run one command (after ``prelude``); return an error description or None."""
    script = f"{prelude}\n{cmd}" if prelude else cmd
    try:
        proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=_env(), capture_output=True,
                              text=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"timed out after {COMMAND_TIMEOUT} s"
    if proc.returncode != 0:
        return f"exit {proc.returncode}\n{_shorten(proc.stderr or proc.stdout)}"
    return None


_SERVER = re.compile(r"^(?P<env>(?:[A-Za-z_]\w*=\S+\s+)*)(?P<prog>cortex-fa serve|panel serve)\b")
_ASSIGNMENT = re.compile(r"""^[A-Za-z_]\w*=(\$\(.*\)|"[^"]*"|'[^']*'|[^\s;&|]+)$""")


def server_command(cmd: str, port: int) -> str:
    """The command with our port (and no browser tab) added where it takes effect."""
    m = _SERVER.match(cmd)
    if m["prog"] == "cortex-fa serve":
        return f"{cmd} --port {port} --no-show"  # the last --port wins
    head, sep, tail = cmd.partition(" --args ")
    return f"{head} --port {port}{sep}{tail}"  # before --args, which go to the app


def run_server(cmd: str, cwd: Path, prelude: str = "", timeout: float = 180.0) -> str | None:
    """Start a server command on a free port, wait for HTTP 200 on it, stop it."""
    port = _free_port()
    m = _SERVER.match(cmd)
    line = f"{m['env']}exec {server_command(cmd, port)[len(m['env']):]}"  # the server replaces the shell
    script = f"{prelude}\n{line}" if prelude else line
    log = cwd / f"server-{port}.log"  # a file, not a pipe: a chatty server must never block
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=_env(), stdout=out, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True, stdin=subprocess.DEVNULL)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"exited with {proc.returncode} before serving\n{_shorten(log.read_text())}"
            try:
                with opener.open(f"http://127.0.0.1:{port}/", timeout=10) as resp:
                    if resp.status == 200 and resp.read():
                        return None
            except OSError:
                time.sleep(1.0)
        return f"no HTTP answer on port {port} within {timeout:.0f} s\n{_shorten(log.read_text())}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run_python(code: str, cwd: Path, name: str) -> str | None:
    script = cwd / name
    script.write_text(code, encoding="utf-8")
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=cwd, env=_env(), capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"timed out after {COMMAND_TIMEOUT} s"
    if proc.returncode != 0:
        return f"exit {proc.returncode}\n{_shorten(proc.stderr)}"
    return None


# -- tests -----------------------------------------------------------------------------

def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for page in ("index.html", "getting-started/index.html", "api/rules/index.html", "cli/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    html = (tmp_path / "site" / "api" / "rules" / "index.html").read_text(encoding="utf-8")
    assert 'class="arithmatex"' in html and ".. math::" not in html and ":math:`" not in html
    assert 'src="../../assets/katex/katex.min.js"' in html  # the math renderer is the bundled one
    problems = offline_problems(tmp_path / "site")
    assert not problems, "the site is not self-contained:\n" + "\n".join(problems[:40])


# -- the built site is self-contained ---------------------------------------------------

# Attributes through which a browser fetches something by itself (links <a href> are only followed on a click).
_FETCHING = {"script": ("src",), "img": ("src", "srcset"), "iframe": ("src",), "frame": ("src",),
             "source": ("src", "srcset"), "video": ("src", "poster"), "audio": ("src",), "track": ("src",),
             "embed": ("src",), "object": ("data",), "input": ("src",), "image": ("href", "xlink:href"),
             "use": ("href", "xlink:href")}
_LINK_NAVIGATION = {"canonical", "alternate", "next", "prev", "author", "license", "help", "search"}
_CSS_URL = re.compile(r"""@import\s+(?:url\(\s*)?['"]?([^'")\s;]+)|url\(\s*['"]?([^'")\s]+)""")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)  # http://, https://, //host (not data:, #id)


class _PageRefs(html.parser.HTMLParser):
    """Collects from one page: fetched URLs ``(what, url)``, inline CSS, and the .arithmatex formulas."""

    def __init__(self):
        super().__init__()
        self.urls, self.css, self.math = [], [], []
        self._style = False
        self._math = None  # [tag, depth, text parts, display] while inside a formula

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in _FETCHING.get(tag, ()):
            value = attrs.get(name) or ""
            for url in ([u.split()[0] for u in value.split(",") if u.strip()] if name == "srcset" else [value]):
                if url:
                    self.urls.append((f"<{tag} {name}>", url))
        if tag == "link" and attrs.get("href"):
            rel = set((attrs.get("rel") or "").lower().split())
            if not rel or not rel <= _LINK_NAVIGATION:
                self.urls.append((f"<link rel={attrs.get('rel')}>", attrs["href"]))
        if attrs.get("style"):
            self.css.append(attrs["style"])
        self._style = tag == "style"
        if self._math is not None and tag == self._math[0]:
            self._math[1] += 1
        elif self._math is None and "arithmatex" in (attrs.get("class") or "").split():
            self._math = [tag, 1, [], tag != "span"]

    def handle_endtag(self, tag):
        self._style = False
        if self._math is not None and tag == self._math[0]:
            self._math[1] -= 1
            if self._math[1] == 0:
                self.math.append(("".join(self._math[2]), self._math[3]))
                self._math = None

    def handle_data(self, data):
        if self._style:
            self.css.append(data)
        if self._math is not None:
            self._math[2].append(data)


def _css_urls(text: str):
    return [a or b for a, b in _CSS_URL.findall(text)]


def _local_target(site: Path, base: Path, url: str):
    """The file a relative or site-absolute URL names, or None for data:, #fragment and the like."""
    path = url.split("#")[0].split("?")[0]
    if not path or re.match(r"^[a-z][a-z0-9+.-]*:", path, re.I):
        return None
    return (site / path.lstrip("/")) if path.startswith("/") else (base / path)


def offline_problems(site: Path) -> list[str]:
    """What in a built site would make a browser reach another host, or miss a local file.

    Checks every page's fetching attributes (``<script src>``, ``<link href>`` other
    than navigation, ``<img src/srcset>``, frames, media), its ``<style>`` blocks and
    ``style=""`` attributes, and every ``.css`` file of the site (``@import``,
    ``url()``): a URL with a host (``https://``, ``//``) is a problem, and so is a
    local one whose file is not in the site.
    """
    problems = []

    def check(where: Path, what: str, url: str):
        if _EXTERNAL.match(url.strip()):
            problems.append(f"{where.relative_to(site)}: {what} {url} is on another host")
        elif (target := _local_target(site, where.parent, url.strip())) is not None and not target.is_file():
            problems.append(f"{where.relative_to(site)}: {what} {url} does not exist in the site")

    for page in sorted(site.rglob("*.html")):
        refs = _PageRefs()
        refs.feed(page.read_text(encoding="utf-8"))
        for what, url in refs.urls:
            check(page, what, url)
        for url in _css_urls("\n".join(refs.css)):
            check(page, "inline CSS url()", url)
    for sheet in sorted(site.rglob("*.css")):
        for url in _css_urls(sheet.read_text(encoding="utf-8", errors="replace")):
            check(sheet, "url()", url)
    return problems


def test_offline_check_finds_external_and_missing_resources(tmp_path):
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "ok.css").write_text("@font-face{src:url(ok.woff2) format('woff2')}")
    (tmp_path / "css" / "ok.woff2").write_bytes(b"")
    (tmp_path / "css" / "bad.css").write_text("@import 'https://fonts.example/css';b{background:url(gone.png)}")
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text(
        '<link rel="stylesheet" href="../css/ok.css"><link rel="canonical" href="https://example.org/page/">'
        '<script src="https://cdn.example/mathjax.js"></script><script src="../js/local.js"></script>'
        '<img srcset="../img/a.png 1x, //img.example/b.png 2x"><a href="https://example.org">a link</a>'
        '<style>@import url("http://fonts.example/x.css");</style><div style="background:url(data:,x)"></div>'
        '<span class="arithmatex">\\(a &lt; b\\)</span>')
    found = offline_problems(tmp_path)
    assert sorted(found) == sorted([
        "css/bad.css: url() https://fonts.example/css is on another host",
        "css/bad.css: url() gone.png does not exist in the site",
        "page/index.html: <script src> https://cdn.example/mathjax.js is on another host",
        "page/index.html: <script src> ../js/local.js does not exist in the site",
        "page/index.html: <img srcset> ../img/a.png does not exist in the site",
        "page/index.html: <img srcset> //img.example/b.png is on another host",
        "page/index.html: inline CSS url() http://fonts.example/x.css is on another host",
    ]), found
    refs = _PageRefs()
    refs.feed((tmp_path / "page" / "index.html").read_text())
    assert refs.math == [("\\(a < b\\)", False)]


# The formula's source as docs/assets/math.js takes it from an .arithmatex element; every one must render.
_KATEX_CHECK = r"""
const katex = require(process.argv[1]);
const formulas = JSON.parse(require("fs").readFileSync(0, "utf8"));
const failed = [];
for (const [page, text, display] of formulas) {
  const t = text.trim();
  const m = /^\\\(([\s\S]*)\\\)$/.exec(t) || /^\\\[([\s\S]*)\\\]$/.exec(t);
  try { katex.renderToString(m ? m[1] : t, {displayMode: display, throwOnError: true, strict: "ignore"}); }
  catch (e) { failed.push(page + ": " + t.slice(0, 80).replace(/\s+/g, " ") + " -> " + e.message.split("\n")[0]); }
}
process.stdout.write(JSON.stringify({rendered: formulas.length - failed.length, failed}));
"""


def test_every_formula_renders_with_the_bundled_katex(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    node = shutil.which("node")
    if node is None:  # README's Debian setup has npm (so node): under CI a missing node is a failure
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)("needs node to run the bundled KaTeX")
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    formulas = []
    for page in sorted(site.rglob("*.html")):
        refs = _PageRefs()
        refs.feed(page.read_text(encoding="utf-8"))
        formulas += [(str(page.relative_to(site)), text, display) for text, display in refs.math]
    assert len(formulas) > 100 and any(d for *_, d in formulas)  # the docs do have inline and display math
    done = subprocess.run([node, "-e", _KATEX_CHECK, str(site / "assets" / "katex" / "katex.min.js")],
                          input=json.dumps(formulas), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert not result["failed"], f"{len(result['failed'])} formula(s) KaTeX cannot render:\n" + "\n".join(
        result["failed"][:30])
    assert result["rendered"] == len(formulas)


def test_every_command_is_run_or_mapped():
    """Classify every shell command; the mappings must point at things that exist."""
    seen = 0
    for page, kind, code, line in all_items():
        if kind != "sh":
            continue
        seen += 1
        mapped = mapping_for(code)
        if mapped is None:
            continue  # it is run by test_page_commands_run
        covered_by = mapped[0]
        path, _, name = covered_by.partition("::")
        assert (ROOT / path).exists(), f"{_rel(page)}:{line}: {code!r} is mapped to {covered_by}, which does not exist"
        if name:
            assert re.search(rf"^def {re.escape(name)}\b", (ROOT / path).read_text(), re.M), \
                f"{_rel(page)}:{line}: {code!r} is mapped to {covered_by}: no such test"
    assert seen >= 10, "the docs show fewer commands than expected: is the extraction broken?"


def test_mapped_python_blocks_point_at_tests():
    for page, kind, code, line in all_items():
        if kind == "py" and (m := py_mapping_for(page, code)):
            path = m[0].partition("::")[0]
            assert (ROOT / path).exists(), f"{_rel(page)}:{line}: mapped to {m[0]}, which does not exist"


@pytest.fixture(scope="module")
def sample_results(tmp_path_factory):
    """A small real study (bp, fa x depths 1-3 x seeds 0, 1) and one run, as files."""
    import cortex_fa as cfa
    from cortex_fa.data import load_mnist
    from cortex_fa.study import combine_runs

    where = tmp_path_factory.mktemp("sample_results")
    data = load_mnist(progress=False)
    base = cfa.RunConfig(train_subset=1000, epochs=2, batch_size=50, probe_size=200)
    runs = [cfa.train(base.replace(rule=rule, hidden=(32,) * depth, seed=seed), data, progress=False)
            for rule in ("bp", "fa") for depth in (1, 2, 3) for seed in (0, 1)]
    cfa.save_results(combine_runs(runs), where / "study.nc")
    cfa.save_results(runs[-1], where / "run.nc")
    return {"study": where / "study.nc", "run": where / "run.nc"}


def _pages_with_work():
    out = []
    for page in PAGES:
        items = page_items(page)
        if any((k == "sh" and mapping_for(c) is None) or (k == "py" and py_mapping_for(page, c) is None)
               for k, c, _ in items):
            out.append(pytest.param(page, id=_rel(page)))
    return out


@pytest.mark.mnist
@pytest.mark.slow
@pytest.mark.spread  # pages take up to minutes each; sample_results is seconds
@pytest.mark.parametrize("page", _pages_with_work())
def test_page_commands_run(page, tmp_path, sample_results):
    """Run a page's commands and python blocks in order, in a fresh directory."""
    for name in LINKED_DIRS:
        if (ROOT / name).is_dir():
            (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    for name in COPIED_DIRS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in STUDY_NAMES:
        shutil.copy(sample_results["study"], tmp_path / name)
    for name in RUN_NAMES:
        shutil.copy(sample_results["run"], tmp_path / name)
    prelude: list[str] = []
    failures = []
    for n, (kind, code, line) in enumerate(page_items(page)):
        where = f"{_rel(page)}:{line}"
        if kind == "file":
            name, _, content = code.partition("\n")
            (tmp_path / name).write_text(content + "\n", encoding="utf-8")
        elif kind == "sh":
            if mapping_for(code):
                continue
            if re.search(SHRINK[0], code):
                code += SHRINK[1]
            if _SERVER.match(code):
                error = run_server(code, tmp_path, "\n".join(prelude))
            else:
                error = run_shell(code, tmp_path, "\n".join(prelude))
                if error is None and _ASSIGNMENT.match(code):
                    prelude.append(code)
            if error:
                failures.append(f"{where}: $ {code}\n{error}")
        else:
            if py_mapping_for(page, code):
                continue
            error = run_python(code, tmp_path, f"block_{n}_{line}.py")
            if error:
                failures.append(f"{where}: python block\n{error}")
    assert not failures, "\n\n".join(failures)


# -- reference pages agree with the code ----------------------------------------------

def _cli_flags():
    from cortex_fa.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = {}
    for name, p in sub.choices.items():
        flags = set()
        stack = [p]
        while stack:
            q = stack.pop()
            for action in q._actions:
                if isinstance(action, argparse._SubParsersAction):
                    stack += list(action.choices.values())
                    flags.update(action.choices)
                flags.update(o for o in action.option_strings if o not in ("-h", "--help") and o.startswith("--"))
        out[name] = flags
    return out


def test_cli_page_lists_every_command_and_flag():
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = []
    for command, flags in _cli_flags().items():
        if not re.search(rf"^## {command}$", text, re.M):
            missing.append(f"section '## {command}'")
        missing += [f"{command} {flag}" for flag in sorted(flags) if flag.lstrip("-") and f"`{flag}" not in text
                    and f"{flag} " not in text and f"{flag}`" not in text]
    assert not missing, f"docs/cli.md does not mention: {', '.join(missing)}"


def test_schema_page_lists_every_variable_and_attribute():
    from cortex_fa import cf, results
    from cortex_fa.config import RunConfig

    text = (DOCS / "schema.md").read_text(encoding="utf-8")
    attrs = results.run_attrs(RunConfig(), backend="numpy", data_sha256="x", status="ok")
    names = [*results.VARIABLES, *attrs, *cf.COORDINATES, "steps_per_epoch", "diverged_at_step"]
    missing = [n for n in names if f"`{n}`" not in text]
    assert not missing, f"docs/schema.md does not describe: {', '.join(missing)}"


def test_rules_page_describes_every_builtin_rule():
    from cortex_fa import rules

    text = (DOCS / "rules.md").read_text(encoding="utf-8")
    missing = [name for name in rules.available() if f"`{name}`" not in text]
    assert not missing, f"docs/rules.md does not describe rule(s): {', '.join(missing)}"


def test_extraction_handles_continuations_comments_and_console():
    code = "cortex-fa run \\\n  --rule fa   # a comment\n# only a comment\n\necho 'a # b'"
    assert commands("bash", code) == ["cortex-fa run --rule fa", "echo 'a # b'"]
    assert commands("console", "$ cortex-fa --help\nusage: ...") == ["cortex-fa --help"]
    assert mapping_for("bash scripts/demo.sh") and mapping_for("cortex-fa reproduce depth_study")
    assert mapping_for("cortex-fa reproduce") is None
    assert mapping_for("cortex-fa run --rule fa --train-subset 2000") is None
    assert re.search(SHRINK[0], "cortex-fa sweep --rules fa --epochs 5")
    assert server_command("cortex-fa serve a.nc --port 5007", 9) == "cortex-fa serve a.nc --port 5007 --port 9 --no-show"
    assert server_command('X=a.nc panel serve "$APP" --args a.nc', 9) == 'X=a.nc panel serve "$APP" --port 9 --args a.nc'
    assert _ASSIGNMENT.match("APP=$(python -c 'import m; print(m.__file__)')")
    assert not _ASSIGNMENT.match("CORTEX_FA_FILES=a.nc panel serve x")
    assert not re.search(SHRINK[0], "cortex-fa run --rule fa --train-subset 2000")
