"""Write figures as standalone HTML (Bokeh, interactive, no server) and PNG.

PNG goes through HoloViews' Matplotlib backend, so no browser is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import holoviews as hv

from cortex_fa import hybrid
from cortex_fa.viz import figures, gap, synapses
from cortex_fa.viz.hybrid import hybrid_figure

FORMATS = ("html", "png")


def _use_agg() -> None:
    # PNG export must work on headless machines; Agg needs no display.
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")


def save_figure(obj, path, fmt: str, resources: str = "inline", title: str | None = None) -> Path:
    """Save one HoloViews object as ``fmt`` ("html" or "png") at ``path``.

    ``resources="inline"`` embeds BokehJS so the HTML opens offline; "cdn"
    gives small files that need internet access to render.
    """
    path = Path(path).with_suffix("." + fmt)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    if fmt == "html":
        from bokeh.resources import CDN, INLINE

        hv.save(obj, tmp, fmt="html", backend="bokeh", title=title or path.stem,
                resources=INLINE if resources == "inline" else CDN)
    elif fmt == "png":
        _use_agg()
        import matplotlib.pyplot as plt

        hv.save(obj, tmp, fmt="png", backend="matplotlib", dpi=110)
        plt.close("all")  # HoloViews keeps figures alive otherwise
    else:
        raise ValueError(f"unknown figure format {fmt!r}")
    os.replace(tmp, path)  # atomic: no half-written figures on failure
    return path


def save_figures(ds, outdir, formats=FORMATS, resources: str = "inline", depth=None, sel=None,
                 only=None):
    """Write the figures of :func:`figures.all_figures`, :func:`gap.gap_vs_depth` for studies of
    several rules and seeds, for files with synapse
    snapshots :func:`synapses.synapse_figures`, and for studies over per-column
    rules :func:`cortex_fa.viz.hybrid.hybrid_figure` (or just ``only``) into ``outdir``.

    Returns
    -------
    written : list of pathlib.Path
    skipped : dict
        Figure name to the reason it was not drawn (e.g. a run has one depth).
    """
    _use_agg()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    figs, skipped = figures.all_figures(ds, sel=sel, depth=depth, only=only)
    if only is None or "hybrid" in only:
        if hybrid.DIM in ds.dims:
            figs["hybrid"] = hybrid_figure(ds)
        elif only is not None:
            skipped["hybrid"] = f"needs a study with a {hybrid.DIM} axis (a sweep over per-column rules)"
    if only is None or gap.NAME in only:
        why = gap.cannot_draw(ds, sel=sel)
        if why is None:
            figs[gap.NAME] = gap.gap_vs_depth(ds, sel=sel)
        elif only is not None:
            skipped[gap.NAME] = why
    if only is None or set(only) & set(synapses.FIGURES):
        more, why = synapses.synapse_figures(ds, depth=depth, sel=sel)
        wanted = synapses.FIGURES if only is None else [n for n in synapses.FIGURES if n in only]
        figs.update({n: more[n] for n in wanted if n in more})
        skipped.update({n: why[n] for n in wanted if n in why})
    written = []
    for name, obj in figs.items():
        for fmt in formats:
            written.append(save_figure(obj, outdir / name, fmt, resources=resources,
                                       title=f"cortex_fa: {name.replace('_', ' ')}"))
    return written, skipped
