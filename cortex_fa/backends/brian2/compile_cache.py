"""Where compiled standalone programs live, and how processes share them safely.

Root: ``$CORTEX_FA_BRIAN2_CACHE``, else ``$XDG_CACHE_HOME/cortex_fa/brian2``
(``~/.cache/cortex_fa/brian2``). Inside it:

``<key>/``
    A compiled project, named by :func:`content_key`: a hash of every file
    the code generator wrote (up to the names Brian2 makes unique per
    process, see :func:`canonical`) and of the toolchain (compiler version, Brian2
    version, Python, platform). Reused by every model and process that
    generates the same content; never written after it appears.
``tmp-<process>-<n>/``
    A project being generated or compiled by one process. It becomes
    ``<key>/`` by one atomic :func:`os.rename`, under an exclusive lock on
    ``<key>.lock``, so two processes that need the same program compile it
    once and neither sees it half-written.
``runs/<process>-<n>/``
    The run directory of one model of one process (:mod:`~cortex_fa.backends.brian2.standalone_runs`).

``<process>`` is the process id and its start time (:func:`process_tag`), so
a directory whose process is gone is recognised even if the id was reused;
:func:`clean_stale` removes those, and every new standalone model calls it.
Clearing the cache is deleting the root directory when no run is using it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import re
import shutil
from pathlib import Path

_COUNTER = itertools.count()
# Generated files that are not the program: outputs of a build or a run.
_SKIP_DIRS = {"results"}
_SKIP_SUFFIXES = (".o", ".log", ".lock")
_SKIP_NAMES = {"main", "make.deps", "build.log", "sourcefiles.txt"}


def cache_root() -> Path:
    """The cache directory (see the module docstring); created if missing."""
    explicit = os.environ.get("CORTEX_FA_BRIAN2_CACHE")
    if explicit:
        root = Path(explicit).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = Path(xdg) / "cortex_fa" / "brian2"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), "0" elsewhere, None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2:].split()[19].decode()
    except FileNotFoundError:
        return None
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return "0"


def process_tag(pid: int | None = None) -> str:
    """``<pid>-<start time>``: names this process's directories."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}-{_start_time(pid) or 0}"


def tag_alive(name: str) -> bool:
    """Whether the process that made the directory ``name`` (``[tmp-]<pid>-<start>-<n>``) still runs."""
    parts = name.removeprefix("tmp-").split("-")
    if len(parts) < 2 or not parts[0].isdigit():
        return True  # not ours: leave it alone
    started = _start_time(int(parts[0]))
    return started is not None and started in (parts[1], "0")


def unique_name(prefix: str = "") -> str:
    return f"{prefix}{process_tag()}-{next(_COUNTER)}"


def clean_stale(root: Path | None = None) -> list[str]:
    """Remove the ``tmp-*`` and ``runs/*`` directories of processes that have ended; return their names."""
    root = cache_root() if root is None else root
    removed = []
    candidates = [p for p in root.glob("tmp-*")] + [p for p in (root / "runs").glob("*")]
    for path in candidates:
        if path.is_dir() and not tag_alive(path.name):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


# Brian2 writes the clocks' resets (``_array_<clock>_t[0] = 0.0;``) in set order, which varies between
# processes: runs of such lines are sorted before hashing (they set distinct variables; order is moot).
_CLOCK_RESET = re.compile(rb"^\s*_array_\w+_(timestep|t)\[0\] = [^;]*;\s*$")


# Code objects get process-unique names: a model made after another in the same process has
# ``ff1_plasticity_codeobject_1`` where the first had ``ff1_plasticity_codeobject``. The names live only
# inside the program (files, functions); arrays and run arguments are named after the groups.
_CODEOBJECT_SUFFIX = re.compile(rb"(_codeobject)_\d+\b")


def canonical(text: bytes) -> bytes:
    """``text`` with code-object names unsuffixed and every run of consecutive clock-reset lines sorted."""
    text = _CODEOBJECT_SUFFIX.sub(rb"\1", text)
    out, run = [], []
    for line in text.split(b"\n"):
        if _CLOCK_RESET.match(line):
            run.append(line)
            continue
        out += sorted(run) + [line]
        run = []
    return b"\n".join(out + sorted(run))


def content_key(directory: Path, toolchain: str) -> str:
    """Hash of the generated project in ``directory`` (paths and contents) and ``toolchain``.

    Paths and contents are hashed in :func:`canonical` form, so that the
    same model generated by two processes, or twice in one, has one key.
    """
    directory = Path(directory)
    raw = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if (not path.is_file() or rel.parts[0] in _SKIP_DIRS or path.name in _SKIP_NAMES
                or path.name.endswith(_SKIP_SUFFIXES)):
            continue
        raw.append((str(rel).encode(), rel.parts[0] != "static_arrays", path.read_bytes()))
    # Canonical names only if no two files become one (else two code objects would share a name).
    names = {canonical(rel) if text else rel for rel, text, _ in raw}
    form = canonical if len(names) == len(raw) else (lambda b: b)  # noqa: E731
    h = hashlib.sha256(toolchain.encode())
    for rel, text, data in sorted((form(rel) if text else rel, text, data) for rel, text, data in raw):
        h.update(rel + b"\0" + hashlib.sha256(form(data) if text else data).digest())
    return h.hexdigest()[:32]


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive advisory lock on ``path`` (created if missing), held for the ``with`` block."""
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def get_or_build(generated: Path, key: str, compile_fn, root: Path | None = None) -> tuple[Path, bool]:
    """The compiled project for ``key``: the cached one, or ``generated`` compiled and moved into place.

    ``compile_fn(directory)`` compiles the project in ``directory``. Returns
    ``(path, compiled)``; ``generated`` is gone afterwards either way.
    """
    root = cache_root() if root is None else root
    final = root / key
    if (final / "main").exists():
        shutil.rmtree(generated, ignore_errors=True)
        return final, False
    with locked(root / f"{key}.lock"):
        if (final / "main").exists():  # another process compiled it while we waited
            shutil.rmtree(generated, ignore_errors=True)
            return final, False
        if final.exists():  # a broken entry (e.g. partly deleted by hand): replace it
            shutil.rmtree(final, ignore_errors=True)
        compile_fn(generated)
        os.rename(generated, final)
    return final, True
