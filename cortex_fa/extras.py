"""The optional extras and a one-line error when one is missing.

A core install (``pip install cortex_fa``) trains, writes, reports and
reproduces presets' configs; sweeps need the ``dask`` extra, figures and the
app the ``app`` extra, the spiking backend the ``brian2`` extra. Code that
needs an extra calls :func:`require` before doing anything else, so a missing
one stops it with one line naming the ``pip install`` that fixes it.
"""

from __future__ import annotations

import importlib.util

from cortex_fa.errors import BackendUnavailable

# extra -> the top-level modules it provides (as pyproject's [project.optional-dependencies]).
EXTRAS = {
    "dask": ("dask", "distributed"),
    "app": ("holoviews", "bokeh", "panel", "matplotlib"),
    "brian2": ("brian2",),
}


def missing(extra: str) -> str | None:
    """The first module of ``extra`` that cannot be imported, or None if all can."""
    for module in EXTRAS[extra]:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):  # a broken or half-removed install
            return module
    return None


def require(extra: str, what: str) -> None:
    """Raise :class:`~cortex_fa.errors.BackendUnavailable` if ``extra`` is not installed.

    Parameters
    ----------
    extra : str
        A key of :data:`EXTRAS`.
    what : str
        What needs it, for the message ("a sweep", "cortex_fa.viz").
    """
    module = missing(extra)
    if module is not None:
        raise BackendUnavailable(f"{what} needs the '{extra}' extra ({module} is not installed): "
                                 f"pip install 'cortex_fa[{extra}]'", name=module)
