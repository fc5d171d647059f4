"""Figures and an interactive app for cortex_fa results (needs the ``app`` extra).

- :mod:`cortex_fa.viz.figures`: the five standard HoloViews figures.
- :mod:`cortex_fa.viz.gap`: the verdict figure, each rule's paired gap to bp against depth.
- :mod:`cortex_fa.viz.app`: :func:`create_app`, a Panel dashboard factory.
- :mod:`cortex_fa.viz.export`: write figures as standalone HTML and PNG.
- :mod:`cortex_fa.viz.synapses`: the synapse view (W/B pair scatters, receptive fields);
  :mod:`cortex_fa.viz.snapshot_runs` picks the run and snapshot it shows.

Imports are lazy so ``import cortex_fa.viz`` stays cheap.
"""

from __future__ import annotations

from cortex_fa.extras import require

# Every module here draws or serves with the app extra: one line, not a traceback, without it.
require("app", "cortex_fa.viz (figures and the app)")

__all__ = ["create_app", "save_figures", "all_figures", "test_error_vs_depth",
           "learning_curves", "alignment_curves", "alignment_heatmap", "gradient_flow"]


def __getattr__(name):
    if name == "create_app":
        from cortex_fa.viz.app import create_app

        return create_app
    if name == "save_figures":
        from cortex_fa.viz.export import save_figures

        return save_figures
    if name in __all__:
        from cortex_fa.viz import figures

        return getattr(figures, name)
    raise AttributeError(f"module 'cortex_fa.viz' has no attribute {name!r}")
