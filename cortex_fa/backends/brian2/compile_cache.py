"""Where compiled standalone programs live, and how processes share them safely.

Root: ``$CORTEX_FA_BRIAN2_CACHE``, else ``$XDG_CACHE_HOME/cortex_fa/brian2``
(``~/.cache/cortex_fa/brian2``). Inside it:

``<key>/``
    A compiled project, named by :func:`content_key`: a hash of every file
    the code generator wrote and of the toolchain (compiler version, Brian2
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


def content_key(directory: Path, toolchain: str) -> str:
    """Hash of the generated project in ``directory`` (paths and contents) and ``toolchain``."""
    h = hashlib.sha256(toolchain.encode())
    directory = Path(directory)
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if (not path.is_file() or rel.parts[0] in _SKIP_DIRS or path.name in _SKIP_NAMES
                or path.name.endswith(_SKIP_SUFFIXES)):
            continue
        h.update(str(rel).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
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
