"""Studies of hybrid networks: which columns need symmetric feedback?

A hybrid study sweeps ``column_rules`` (one layer-wise rule per hidden
column, see :mod:`cortex_fa.rules.per_column`), e.g. backprop's feedback
(``bp``) in the top ``k`` columns and feedback alignment (``fa``) below.
These wrappers of :mod:`cortex_fa.analysis` take such a study (one rule
label, one depth) and return, per layout: the selected test error over seeds,
its paired (same seed) difference to a reference layout, the number of
misclassified test images, and the per-column alignment at the selected epoch.
Errors in percent and counts of the 10,000 test images, angles in degrees.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from cortex_fa import analysis
from cortex_fa.errors import ResultsError

DIM = "column_rules"
N_TEST = 10_000


def layout(label: str, symmetric: str = "bp") -> tuple[str, int]:
    """``"fa,fa,bp"`` -> ``("top", 1)``: where the ``symmetric`` columns sit, and how many.

    ``"none"`` (no symmetric column) and ``"all"`` have no side; anything that
    is not one contiguous block at the top or the bottom is ``"mixed"``.
    """
    rules = label.split(",")
    k = sum(r == symmetric for r in rules)
    if k == 0:
        return "none", 0
    if k == len(rules):
        return "all", k
    if all(r == symmetric for r in rules[-k:]):
        return "top", k
    if all(r == symmetric for r in rules[:k]):
        return "bottom", k
    return "mixed", k


def _squeezed(study: xr.Dataset, da: xr.DataArray) -> xr.DataArray:
    if DIM not in study.dims:
        raise ResultsError(f"the study has no {DIM!r} dim; sweep --grid 'column_rules=[...],[...]' to make one")
    extra = [d for d in da.dims if d not in (DIM, "seed", "layer") and da.sizes[d] > 1]
    if extra:
        raise ResultsError(f"a hybrid summary needs one value of {', '.join(extra)}; select one first")
    return da.squeeze([d for d in da.dims if d not in (DIM, "seed", "layer")], drop=True)


def selected_alignment(study: xr.Dataset, var: str = "delta_alignment") -> xr.DataArray:
    """``var`` per run and column at the epoch of best validation accuracy (the selected network)."""
    at = study[var].isel(step=analysis._over(study["validation_accuracy"], "step", analysis.first_argmax)
                         .fillna(0).astype(int))
    return _squeezed(study, at)


def summary(study: xr.Dataset, reference: str | None = None) -> xr.Dataset:
    """Per layout of ``column_rules``: selected error, paired difference to ``reference``, alignment.

    Parameters
    ----------
    study : xarray.Dataset
        A study with a ``column_rules`` dim, one rule label and one depth.
    reference : str, optional
        The layout the others are compared with, same seed against same
        seed (default: the one without symmetric columns, e.g. all ``fa``).

    Returns
    -------
    xarray.Dataset
        Over ``column_rules``: ``side`` and ``k`` (see :func:`layout`),
        ``error_mean/lo/hi`` and ``n`` (selected test error, %, 95 % t-interval
        over seeds), ``errors_mean`` (misclassified test images),
        ``diff_mean/lo/hi`` (paired difference to ``reference``, percentage
        points), and per ``layer`` the seed mean of ``delta_alignment`` and
        ``learned_alignment`` (where recorded) at the selected epoch.
    """
    err = _squeezed(study, analysis.test_errors(study)["selected_error"])
    labels = [str(v) for v in err[DIM].values]
    if reference is None:
        none = [l for l in labels if layout(l)[0] == "none"]
        if not none:
            raise ResultsError("no layout without symmetric columns to compare with; pass reference=")
        reference = none[0]
    if reference not in labels:
        raise ResultsError(f"reference layout {reference!r} is not in the study ({', '.join(labels)})")
    s = analysis.seed_summary(err)
    d = analysis.seed_summary(err - err.sel({DIM: reference}, drop=True))
    out = xr.Dataset({
        "side": (DIM, [layout(l)[0] for l in labels]), "k": (DIM, [layout(l)[1] for l in labels]),
        "error_mean": s["mean"], "error_lo": s["lo"], "error_hi": s["hi"], "n": s["n"],
        "errors_mean": s["mean"] * N_TEST / 100.0,
        "diff_mean": d["mean"], "diff_lo": d["lo"], "diff_hi": d["hi"],
    })
    for var in ("delta_alignment", "learned_alignment"):
        if var in study and np.isfinite(study[var].values).any():
            out[var] = selected_alignment(study, var).mean("seed")
    out.attrs.update(reference=reference, metric="selected test error (best validation epoch)")
    return out


def table(study: xr.Dataset, reference: str | None = None) -> str:
    """The summary as a Markdown table, one row per layout, ordered by side and k."""
    s = summary(study, reference)
    order = sorted(range(s.sizes[DIM]), key=lambda i: ({"none": 0, "top": 1, "bottom": 2, "mixed": 3, "all": 4}
                                                       [str(s.side.values[i])], int(s.k.values[i])))
    head = ["column rules (input up)", "bp side", "k", "selected test error %", f"vs {s.attrs['reference']} (pp)",
            "errors"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i in order:
        c = s.isel({DIM: i})
        rows.append(f"| {c[DIM].item()} | {c.side.item()} | {int(c.k)} | {_cell(c, 'error')} | "
                    f"{_cell(c, 'diff', signed=True)} | {float(c.errors_mean):.0f} |")
    return "\n".join(rows)


def _cell(c, kind, signed=False) -> str:
    mean, lo, hi = (float(c[f"{kind}_{k}"]) for k in ("mean", "lo", "hi"))
    fmt = "{:+.2f}" if signed else "{:.2f}"
    if not np.isfinite(lo):
        return fmt.format(mean)
    return f"{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}]"
