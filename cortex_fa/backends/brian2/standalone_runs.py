"""Run directories: where one model of one process executes a cached standalone program.

A compiled project in the cache (:mod:`~cortex_fa.backends.brian2.compile_cache`)
is shared and never written. Each model runs it from a directory of its own,
``<cache>/runs/<pid>-<start>-<n>/``, holding

- ``main``: a link to the compiled program;
- ``static_arrays/``: links to the project's initial arrays, plus the files
  Brian2 writes for each execution's ``run_args`` (removed after each run);
- ``results/``: what the program wrote (Brian2's ``results_directory``,
  given relative to this directory as Brian2 requires).

The directory is removed when the model is closed or collected, or at
exit; after a ``kill -9`` it stays until the next standalone model of any
process finds its process gone (:func:`~cortex_fa.backends.brian2.compile_cache.clean_stale`).
The program itself dies with the process that runs it: it asks the kernel
for ``SIGKILL`` when its parent ends (``PR_SET_PDEATHSIG``, Linux), see
:mod:`~cortex_fa.backends.brian2.standalone_build`.
"""

from __future__ import annotations

import os
import shutil
import weakref
from pathlib import Path

from cortex_fa.backends.brian2.compile_cache import cache_root, unique_name

# Read by the program at start: it exits at once if its parent is not this process any more.
PARENT_ENV = "CORTEX_FA_PARENT_PID"


class RunDirectory:
    """A per-model directory linking to the compiled project ``build`` (see the module docstring)."""

    def __init__(self, build: Path, root: Path | None = None):
        runs = (cache_root() if root is None else root) / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        self.build = Path(build)
        self.path = runs / unique_name()
        (self.path / "static_arrays").mkdir(parents=True)
        (self.path / "results").mkdir()
        os.symlink(self.build / "main", self.path / "main")
        for f in (self.build / "static_arrays").iterdir():
            os.symlink(f, self.path / "static_arrays" / f.name)
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    def execute(self, device, run_args) -> None:
        """One execution of the program with ``run_args`` (Brian2's ``device.run``); inputs removed after."""
        os.environ[PARENT_ENV] = str(os.getpid())
        device.project_dir = str(self.path)
        try:
            device.run(directory=str(self.path), results_directory="results", with_output=False, run_args=run_args)
        finally:
            for fname in device.run_args_arrays:  # each execution's inputs: gone once read
                for path in (self.path / "static_arrays" / fname, self.path / "static_arrays" / (fname + ".lock")):
                    try:
                        path.unlink()
                    except OSError:
                        pass

    def remove(self) -> None:
        self._finalizer()

    @property
    def removed(self) -> bool:
        return not self._finalizer.alive
