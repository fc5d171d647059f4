"""Results that are still being written: a sweep's run directory or one run in progress.

:class:`LiveSource` watches a path and turns what is on disk now into one
Dataset (finished runs plus the ``*.partial.nc`` files of runs in flight) and
a :class:`Progress` (runs done / in flight / total, latest step). It re-reads
only files whose size or modification time changed, and one source is shared
by every browser session of a server, so many open pages cost one reader.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

from cortex_fa.errors import ConfigError, ResultsError
from cortex_fa.results import PARTIAL_SUFFIX, annotate, is_partial, open_file, partial_path


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a live source holds right now (all counts are of runs)."""

    done: int = 0
    running: int = 0
    total: int | None = None  # from the sweep manifest; None if unknown
    latest_step: int | None = None
    latest_epoch: float | None = None
    unreadable: int = 0  # files skipped this time (e.g. caught mid-write by a foreign copier)
    finished: bool = False

    def text(self) -> str:
        """One status line, plain text (the app escapes it)."""
        total = "?" if self.total is None else str(self.total)
        parts = [f"runs done {self.done} / in flight {self.running} / total {total}"]
        if self.latest_step is not None:
            parts.append(f"latest step {self.latest_step} (epoch {self.latest_epoch:.3g})")
        if self.unreadable:
            parts.append(f"{self.unreadable} file(s) unreadable, retrying")
        parts.append("finished: no longer refreshing" if self.finished else "refreshing")
        return " · ".join(parts)


def check_live_path(path) -> Path:
    """The path ``serve --live`` may watch, or a ConfigError (exit 2) if it cannot become one.

    A missing path is fine (a sweep is about to create it) unless one of its
    ancestors is a regular file: then no directory can ever appear there.
    """
    path = Path(path)
    for parent in [path, *path.parents]:
        if parent.exists():
            if parent != path and not parent.is_dir():
                raise ConfigError(f"serve --live {path}: {parent} is a file, so {path} can never be created")
            break
    if path.is_file() and not path.name.endswith(".nc"):
        raise ConfigError(f"serve --live {path}: expected a run directory or a .nc results file")
    return path


class LiveSource:
    """Watch a run directory, or one run's ``NAME.nc`` / ``NAME.partial.nc``.

    Parameters
    ----------
    path : path-like
        A sweep's run directory (holding ``sweep.json``), any directory of run
        files, a run's final file name, or its partial file name.
    min_age : float
        Seconds a result is reused before the disk is looked at again.
    since : float, optional
        Ignore files last modified before this time (``time.time()``): the
        result of an earlier run that the one starting now will overwrite.
    """

    def __init__(self, path, *, min_age: float = 1.0, since: float | None = None):
        path = check_live_path(path)
        self.is_run = path.name.endswith(".nc")
        if self.is_run:  # NAME.partial.nc -> watch NAME.nc and its partial file
            self.final = (path.with_name(path.name[: -len(PARTIAL_SUFFIX)] + ".nc")
                          if is_partial(path) else path)
        self.path, self.min_age, self.since = path, min_age, since
        self.version = 0  # bumped whenever the Dataset changes
        self.ds, self.progress = None, Progress()
        self._seen: dict = {}  # file -> ((size, mtime_ns), Dataset)
        self._checked = 0.0
        self._lock = threading.Lock()

    def label(self) -> str:
        return self.final.name if self.is_run else self.path.name or str(self.path)

    def poll(self):
        """``(version, Dataset or None, Progress)``, re-reading changed files if due."""
        with self._lock:
            if time.monotonic() - self._checked >= self.min_age:
                self._refresh()
                self._checked = time.monotonic()
            return self.version, self.ds, self.progress

    # -- reading ------------------------------------------------------------
    def _files(self) -> list[Path]:
        if self.is_run:
            found = [self.final, partial_path(self.final)]
        elif self.path.is_dir():
            found = sorted(self.path.glob("*.nc"))
        else:
            return []
        found = [f for f in found if self._fresh(f)]
        finals = {f.name for f in found if not is_partial(f)}
        return [f for f in found if not is_partial(f) or
                f.name[: -len(PARTIAL_SUFFIX)] + ".nc" not in finals]

    def _fresh(self, path: Path) -> bool:
        try:
            return self.since is None or path.stat().st_mtime >= self.since
        except OSError:
            return False

    def _total(self):
        if self.is_run:
            return 1
        try:
            return len(json.loads((self.path / "sweep.json").read_text())["runs"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _refresh(self) -> None:
        runs, unreadable, changed = [], 0, False
        files = self._files()
        for f in files:
            try:
                st = f.stat()
            except OSError:  # renamed away (partial -> final) between listing and stat
                continue
            key = (st.st_size, st.st_mtime_ns)
            old = self._seen.get(f)
            if old is None or old[0] != key:
                try:
                    self._seen[f] = (key, open_file(f))
                    changed = True
                except ResultsError:  # truncated or foreign: keep what we had
                    unreadable += 1
                    if old is None:
                        continue
            runs.append(self._seen[f][1])
        gone = set(self._seen) - set(files)
        for f in gone:
            del self._seen[f]
        changed = changed or bool(gone)
        running = sum(r.attrs.get("status") == "running" for r in runs)
        total = self._total()
        steps = [(int(r["step"].values[-1]), float(r["epoch"].values[-1])) for r in runs if r.sizes["step"]]
        latest = max(steps) if steps else (None, None)
        done = len(runs) - running
        self.progress = Progress(done=done, running=running, total=total, latest_step=latest[0],
                                 latest_epoch=latest[1], unreadable=unreadable,
                                 finished=total is not None and done >= total and not running)
        if changed and runs:
            try:
                self.ds = self._combine(runs)
                self.version += 1
            except ResultsError:
                pass  # e.g. a foreign run in the directory: keep showing the last good state

    @staticmethod
    def _combine(runs):
        from cortex_fa.combine import combine_runs

        if len(runs) == 1 and "rule" not in runs[0].dims:
            return runs[0]
        return annotate(combine_runs(runs))
