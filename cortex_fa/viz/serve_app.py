"""Entry script for ``panel serve`` (``cortex-fa serve`` needs no script).

Files come from the arguments after ``--args`` or, if none, from the
``CORTEX_FA_FILES`` environment variable (paths separated by ``os.pathsep``)::

    panel serve "$(python -c 'import cortex_fa.viz.serve_app as m; print(m.__file__)')" \\
        --args study.nc other.nc
    CORTEX_FA_FILES=study.nc:other.nc panel serve path/to/serve_app.py

The files are read once per server process and shared by all sessions; each
session still gets its own dashboard from :func:`cortex_fa.viz.app.create_app`.
"""

from __future__ import annotations

import os
import sys

ENV_VAR = "CORTEX_FA_FILES"


def result_paths(argv=None, environ=None) -> list[str]:
    """Paths from ``argv[1:]`` or else from ``$CORTEX_FA_FILES``."""
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    paths = list(argv[1:]) or [p for p in environ.get(ENV_VAR, "").split(os.pathsep) if p]
    if not paths:
        from cortex_fa.errors import ResultsError

        raise ResultsError(f"no results files: pass them after --args or set {ENV_VAR}")
    return paths


def build():
    """Load (cached per process) and return a fresh dashboard for this session."""
    import panel as pn

    from cortex_fa.viz.app import create_app
    from cortex_fa.viz.data import load_many

    paths = tuple(result_paths())  # as_cached needs hashable arguments
    datasets = pn.state.as_cached("cortex_fa:" + os.pathsep.join(paths), load_many, paths=paths)
    return create_app(datasets)


if __name__.startswith("bokeh"):  # executed by `panel serve` / `bokeh serve`
    build().servable(title="cortex_fa")
