"""Colours, labels and two-backend styling for the HoloViews figures.

Figures are built once and rendered by Bokeh (HTML, app) or Matplotlib (PNG,
no browser needed). HoloViews keeps options per backend, so every style call
here sets both, with each backend's own option names.
"""

from __future__ import annotations

import functools

import holoviews as hv

# Fixed colours so a rule looks the same in every figure and file.
RULE_COLORS = {
    "bp": "#1f77b4", "fa": "#d62728", "usf": "#2ca02c", "frsf": "#9467bd",
    "brsf": "#8c564b", "dfa": "#ff7f0e", "kp": "#17becf", "drtp": "#e377c2",
}
_SPARE = ("#7f7f7f", "#bcbd22", "#393b79", "#637939", "#843c39", "#7b4173")

LABELS = {
    "weight_alignment": "weight alignment ∠(B, Wᵀ) (deg)",
    "delta_alignment": "delta alignment ∠(δ, δ_BP) (deg)",
    "update_alignment": "update alignment ∠(ΔW, ΔW_BP) (deg)",
    "learned_alignment": "learned alignment ∠(B, (W − W₀)ᵀ) (deg)",
    "weight_change": "‖W − W₀‖ / ‖W₀‖",
    "delta_norm": "delta RMS",
    "grad_norm": "‖ΔW‖ (Frobenius)",
    "feedback_norm_ratio": "‖B‖ / ‖W‖",
    "test_accuracy": "test accuracy",
    "test_loss": "test loss",
    "train_accuracy": "train accuracy (running)",
    "train_loss": "train loss (running)",
    "wall_time": "wall time (s)",
    "test_error": "final test error (%)",
    "epoch": "epoch",
    "updates": "updates + 1 (log)",
}

PANEL = {"width": 420, "height": 300}


@functools.lru_cache(maxsize=1)
def ensure_backends() -> None:
    """Load the Bokeh and Matplotlib plotting backends (once, lazily).

    Both must be registered before options can be set for them. Loading does
    not change HoloViews' current backend if one was already chosen.
    """
    current = hv.Store.current_backend if hv.Store.renderers else None
    import holoviews.plotting.bokeh  # noqa: F401
    import holoviews.plotting.mpl  # noqa: F401

    hv.Store.set_current_backend(current or "bokeh")


def label(name: str) -> str:
    """Axis label for a variable name (the name itself if unknown)."""
    return LABELS.get(name, name)


def rule_color(rule: str, rules) -> str:
    """Colour of ``rule``; unknown rules take spare colours in ``rules`` order."""
    if rule in RULE_COLORS:
        return RULE_COLORS[rule]
    unknown = [r for r in rules if r not in RULE_COLORS]
    return _SPARE[unknown.index(rule) % len(_SPARE)] if rule in unknown else _SPARE[0]


def title_color(color: str):
    """A Bokeh hook that draws a panel's title in ``color`` (a rule's colour on per-rule panels)."""
    def hook(plot, element):
        plot.state.title.text_color = color
    return hook


def layer_colors(n: int) -> list[str]:
    """``n`` colours from viridis, input side dark, readout side bright."""
    from bokeh.palettes import Viridis256

    if n <= 1:
        return [Viridis256[0]]
    return [Viridis256[round(i * 220 / (n - 1))] for i in range(n)]


def line(el, color: str, width: float = 2.0, alpha: float = 1.0, dash: bool = False):
    """Style a Curve for both backends, with a hover tool in Bokeh."""
    el = el.opts(color=color, line_width=width, alpha=alpha, tools=["hover"],
                 line_dash="dashed" if dash else "solid", backend="bokeh")
    return el.opts(color=color, linewidth=width * 0.75, alpha=alpha,
                   linestyle="--" if dash else "-", backend="matplotlib")


def band(el):
    """Style Polygons (interval bands) translucent, coloured by their ``color`` value."""
    el = el.opts(color="color", fill_alpha=0.2, line_alpha=0.0, backend="bokeh")
    return el.opts(color="color", alpha=0.2, linewidth=0, backend="matplotlib")


def markers(el, color: str, size: float = 8, marker: str = "circle", alpha: float = 1.0):
    """Style a Scatter; ``marker`` is a Bokeh name mapped for Matplotlib."""
    # Matplotlib's filled "X": its unfilled "x" warns about the default edge colour.
    mpl_marker = {"circle": "o", "x": "X", "triangle": "^", "square": "s"}.get(marker, "o")
    el = el.opts(color=color, size=size, marker=marker, alpha=alpha, tools=["hover"],
                 backend="bokeh")
    return el.opts(color=color, s=size**2 * 0.8, marker=mpl_marker, alpha=alpha,
                   edgecolors=color, backend="matplotlib")


def hollow(el, color: str, size: float = 14):
    """Style a Scatter as open circles (outline only): a mark that says "not decided"."""
    el = el.opts(line_color=color, fill_alpha=0.0, size=size, marker="circle", line_width=2.5, tools=["hover"],
                 backend="bokeh")
    return el.opts(edgecolors=color, facecolors="none", s=size**2 * 0.8, marker="o", linewidth=2,
                   backend="matplotlib")


def panel(obj, title: str, xlabel: str, ylabel: str, logx: bool = False, logy: bool = False,
          legend=True, **bokeh):
    """Set axes, title, legend and size of an (overlaid) panel for both backends.

    ``legend`` is True (inside, top right), False (hidden), ``"outside"`` (to
    the right; the panel is widened to keep its data area) or a position such
    as ``"top_left"``.
    """
    common = dict(title=title, xlabel=xlabel, ylabel=ylabel, logx=logx, logy=logy,
                  show_legend=bool(legend))
    size = {**PANEL, **bokeh}
    where = {"outside": "right", True: "top_right", False: "top_right"}.get(legend, legend)
    if legend == "outside":
        size["width"] += 130
    obj = obj.opts(backend="bokeh", legend_position=where, **common, **size)
    return obj.opts(backend="matplotlib", fig_size=130, aspect=1.4, legend_position=where,
                    **common)


def grid(panels, cols: int):
    """A Layout of panels with ``cols`` columns (no A/B/C sub-labels)."""
    layout = hv.Layout(panels).cols(max(1, cols))
    return layout.opts(sublabel_format="", backend="matplotlib")
