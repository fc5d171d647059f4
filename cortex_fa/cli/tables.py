"""Report tables: cells formatted for people (``text``) beside the numbers behind them (``data``).

:mod:`cortex_fa.cli.report` builds the tables of ``cortex-fa report`` from
these pieces and writes ``text`` to the terminal and Markdown, ``data`` to CSV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEADING = {"n_hidden": "depth"}  # column headings: the word people read for a dim, where it differs


@dataclass
class Table:
    """One report table: ``text`` (formatted cells) for people, ``data`` (numbers) for CSV."""

    name: str
    title: str
    text: object  # pandas.DataFrame of str
    data: object  # pandas.DataFrame of numbers


def fmt(value, spec: str) -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, spec)


def wide(da, col: str, spec: str, name: str, title: str, *, over: str | None = None) -> Table:
    """Rows: every dim but ``col`` (rule first); columns: ``col``.

    With ``over`` (a dim of ``da``, e.g. ``seed``) cells show the mean over it
    and, where some values are NaN, how many were finite: ``3.00 (2/3)``.
    """
    count, total = (da.count(over), da.sizes[over]) if over else (None, None)
    da = da.mean(over) if over else da
    rows = [d for d in da.dims if d != col]
    frame = da.transpose(*rows, col).to_dataframe(name=name)[name].unstack(col)
    text = frame.map(lambda v: fmt(v, spec))
    if over:
        counts = count.transpose(*rows, col).to_dataframe(name="n")["n"].unstack(col)
        text = text.where((counts >= total) | (counts == 0), text + counts.map(lambda k: f" ({k}/{total})"))
    frame.columns = text.columns = [f"{HEADING.get(col, col)} {c}" for c in frame.columns]
    return Table(name, title, text, frame)


def without(table: Table, mask) -> Table:
    """Blank the cells of a :func:`wide` table where ``mask`` (same dims) holds; drop all-blank rows."""
    rows = [d for d in mask.dims if d != "layer"]
    hide = mask.transpose(*rows, "layer").to_dataframe(name="m")["m"].unstack("layer")
    hide.columns = [f"layer {c}" for c in hide.columns]
    hide = hide.reindex(index=table.text.index, columns=table.text.columns).fillna(False).astype(bool)
    keep = ~hide.all(axis=1)
    text, data = table.text.mask(hide, ""), table.data.mask(hide)
    return Table(table.name, table.title, text[keep], data[keep])


def interval(summary, kind: str, col: str, name: str, title: str) -> Table:
    mean, lo, hi = (summary[f"{kind}_{k}"] for k in ("mean", "lo", "hi"))
    rows = [d for d in mean.dims if d != col]
    cells = {}
    for key in ("mean", "lo", "hi"):
        cells[key] = summary[f"{kind}_{key}"].transpose(*rows, col).to_dataframe(name="v")["v"].unstack(col)
    text = cells["mean"].copy().astype(object)
    for r in text.index:
        for c in text.columns:
            m, a, b = (cells[k].loc[r, c] for k in ("mean", "lo", "hi"))
            text.loc[r, c] = fmt(m, ".2f") + ("" if not np.isfinite(a) else f" [{a:.2f}, {b:.2f}]")
    text.columns = [f"{HEADING.get(col, col)} {c}" for c in text.columns]
    data = summary[[f"{kind}_mean", f"{kind}_lo", f"{kind}_hi", "n"]].to_dataframe()
    return Table(name, title, text, data)


def render_text(table: Table) -> str:
    frame = table.text.reset_index()
    cols = [str(c) for c in frame.columns]
    rows = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([table.title, line(cols), *(line(r) for r in rows)])


def render_markdown(table: Table) -> str:
    frame = table.text.reset_index()
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([f"### {table.title}", "", head, rule, *body])


def _signed(mean, lo, hi, spec: str) -> str:
    """``+16.7 [-5.2, +38.5]``: a signed mean and its interval (no interval where it is NaN)."""
    if not np.isfinite(mean):
        return "-"
    return format(mean, "+" + spec) + ("" if not np.isfinite(lo) else f" [{lo:+{spec}}, {hi:+{spec}}]")


def verdict_tables(v) -> list[Table]:
    """The ``verdicts`` and ``breaking_depth`` tables of a :func:`cortex_fa.verdicts.verdicts` result.

    The reference's own row (every difference 0) is left out. Rows of the
    verdicts table are rule x depth (x any swept option); its CSV has the
    numbers in images and points, the seed count and the verdict, and both
    CSVs carry the reference, metric and margin on every row.
    """
    from cortex_fa import verdicts as V

    ref = str(v.attrs["reference"])
    v = v.sel(rule=[r for r in v["rule"].values if str(r) != ref])
    if not v.sizes["rule"]:
        return []
    dim = V.depth_dim(v)
    v = v.transpose("rule", dim, ...)
    about = {"reference": ref, "metric": v.attrs["metric"], "margin_images": int(v.attrs["margin_images"]),
             "margin_pp": float(v.attrs["margin_pp"])}
    names = ["diff_mean", "diff_lo", "diff_hi", "diff_mean_pp", "diff_lo_pp", "diff_hi_pp", "n", "verdict"]
    data = v[names].to_dataframe()[names]
    text = data.apply(lambda r: {
        f"images (rule - {ref})": _signed(r.diff_mean, r.diff_lo, r.diff_hi, ".1f"),
        f"points (rule - {ref})": _signed(r.diff_mean_pp, r.diff_lo_pp, r.diff_hi_pp, ".2f"),
        "seeds": str(int(r.n)), "verdict": r.verdict}, axis=1, result_type="expand")
    text.index = text.index.set_names([HEADING.get(n, n) for n in text.index.names])
    margin = V.margin_text(v)
    what = V.METRIC_TEXT.get(about["metric"], about["metric"])
    title = (f"Verdicts vs {ref} on the {what}, margin {margin}: rule minus {ref} in misclassified test images "
             f"(of {int(v.attrs['n_test']):,}) and in points, mean [95% t-interval] over paired seeds. keeps up: "
             "the interval lies inside ±margin; falls behind: above +margin; ahead: below -margin; "
             "undetermined: any other interval (one that reaches or crosses a margin)")
    bd = V.breaking_depth(v)
    frame = bd.to_dataframe()[["breaking_depth"]]
    bd_text = frame.rename(columns={"breaking_depth": "breaking depth"})
    bd_title = (f"Breaking depth vs {ref} on the {what}, margin {margin}: the first depth at which the rule "
                "falls behind; 'undetermined' if an earlier depth is undetermined; 'none' if it keeps up (or is "
                "ahead) at every depth studied")
    return [Table("verdicts", title, text, data.assign(**about)),
            Table("breaking_depth", bd_title, bd_text, frame.assign(**about))]
