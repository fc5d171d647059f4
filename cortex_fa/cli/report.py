"""``cortex-fa report``: depth-study tables on the terminal, as Markdown and as CSV.

Example::

    cortex-fa report study.nc      # prints tables; writes study.report.md and study.<table>.csv
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cortex_fa.errors import ConfigError, CortexFAError, choices_text, did_you_mean

HEADING = {"n_hidden": "depth"}  # column headings: the word people read for a dim, where it differs


@dataclass
class Table:
    """One report table: ``text`` (formatted cells) for people, ``data`` (numbers) for CSV."""

    name: str
    title: str
    text: object  # pandas.DataFrame of str
    data: object  # pandas.DataFrame of numbers


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="tables of a study: errors, breaking depth, convergence, alignment",
        description="Print a study's tables (rule x depth) and write them next to the file as "
                    "<stem>.report.md and <stem>.<table>.csv.",
    )
    p.add_argument("path", help="study file, run file, run directory or quoted glob of run files")
    p.add_argument("--margin", type=float, default=0.5, help="breaking depth: percentage points behind the reference (0.5)")
    p.add_argument("--reference", default=None, help="breaking depth: reference rule (default bp, if in the study)")
    p.add_argument("--metric", choices=("selected", "final", "oracle_best"), default=None,
                   help="test error used for the breaking depth (default: selected, i.e. at the best-validation "
                        "epoch, when the study has a validation split; else final)")
    p.add_argument("--no-write", action="store_true", help="print only; write no files")
    p.set_defaults(func=main)


def _fmt(value, spec: str) -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, spec)


def _wide(da, col: str, spec: str, name: str, title: str, *, over: str | None = None) -> Table:
    """Rows: every dim but ``col`` (rule first); columns: ``col``.

    With ``over`` (a dim of ``da``, e.g. ``seed``) cells show the mean over it
    and, where some values are NaN, how many were finite: ``3.00 (2/3)``.
    """
    count, total = (da.count(over), da.sizes[over]) if over else (None, None)
    da = da.mean(over) if over else da
    rows = [d for d in da.dims if d != col]
    frame = da.transpose(*rows, col).to_dataframe(name=name)[name].unstack(col)
    text = frame.map(lambda v: _fmt(v, spec))
    if over:
        counts = count.transpose(*rows, col).to_dataframe(name="n")["n"].unstack(col)
        text = text.where((counts >= total) | (counts == 0), text + counts.map(lambda k: f" ({k}/{total})"))
    frame.columns = text.columns = [f"{HEADING.get(col, col)} {c}" for c in frame.columns]
    return Table(name, title, text, frame)


def _without(table: Table, mask) -> Table:
    """Blank the cells of a :func:`_wide` table where ``mask`` (same dims) holds; drop all-blank rows."""
    rows = [d for d in mask.dims if d != "layer"]
    hide = mask.transpose(*rows, "layer").to_dataframe(name="m")["m"].unstack("layer")
    hide.columns = [f"layer {c}" for c in hide.columns]
    hide = hide.reindex(index=table.text.index, columns=table.text.columns).fillna(False).astype(bool)
    keep = ~hide.all(axis=1)
    text, data = table.text.mask(hide, ""), table.data.mask(hide)
    return Table(table.name, table.title, text[keep], data[keep])


def _interval(summary, kind: str, col: str, name: str, title: str) -> Table:
    mean, lo, hi = (summary[f"{kind}_{k}"] for k in ("mean", "lo", "hi"))
    rows = [d for d in mean.dims if d != col]
    cells = {}
    for key in ("mean", "lo", "hi"):
        cells[key] = summary[f"{kind}_{key}"].transpose(*rows, col).to_dataframe(name="v")["v"].unstack(col)
    text = cells["mean"].copy().astype(object)
    for r in text.index:
        for c in text.columns:
            m, a, b = (cells[k].loc[r, c] for k in ("mean", "lo", "hi"))
            text.loc[r, c] = _fmt(m, ".2f") + ("" if not np.isfinite(a) else f" [{a:.2f}, {b:.2f}]")
    text.columns = [f"{HEADING.get(col, col)} {c}" for c in text.columns]
    data = summary[[f"{kind}_mean", f"{kind}_lo", f"{kind}_hi", "n"]].to_dataframe()
    return Table(name, title, text, data)


ERROR_TITLES = {
    "selected": "Selected test error (%): at the epoch of best validation accuracy, mean [95% t-interval] over seeds",
    "final": "Final test error (%), mean [95% t-interval] over seeds",
    "oracle_best": "Oracle best test error (%): the test-set minimum, chosen on the test set (optimistic; "
                   "for reference only), mean [95% t-interval]",
}


def summary_table(study) -> str:
    """The headline test error (selected if validated, else final), rule x depth."""
    from cortex_fa import analysis

    kind = analysis.default_metric(study)
    table = _interval(analysis.error_summary(study), kind, "n_hidden", f"{kind}_error", ERROR_TITLES[kind])
    return render_text(table)


def _selection_tables(study) -> list[Table]:
    """Best-validation epoch and epochs trained, with the runs early stopping did not end."""
    from cortex_fa import selection

    sel = selection.selection(study)
    done = sel.epochs_done.where(study["status"] != "missing")
    return [
        _wide(sel.best_validation_epoch, "n_hidden", ".1f", "best_validation_epoch",
              "Epoch of best validation accuracy (mean over seeds)", over="seed"),
        _wide(done, "n_hidden", ".1f", "epochs_trained", "Epochs trained (mean over seeds)", over="seed"),
        _wide((~sel.converged).where(done.notnull()).sum("seed").where(done.notnull().any("seed")), "n_hidden", ".0f",
              "not_converged", "Runs NOT converged: they reached the epoch maximum before early stopping "
              "ended them (their error is not a converged one; raise --epochs)"),
    ]


def build_tables(study, *, margin=0.5, reference="bp", metric=None) -> list[Table]:
    """Every table of the report, in order: the headline error first."""
    from cortex_fa import analysis, selection
    from cortex_fa.cf import RUN_INTERNAL_DIMS

    s = analysis.error_summary(study)
    validated = analysis.has_validation(study)
    kinds = ("selected", "final", "oracle_best") if validated else ("final", "oracle_best")
    tables = [_interval(s, k, "n_hidden", f"{k}_error", ERROR_TITLES[k]) for k in kinds]
    if validated:
        tables += _selection_tables(study)
        for dim in (d for d in study.dims if d not in ("rule", "n_hidden", "seed", *RUN_INTERNAL_DIMS)):
            choice = selection.choose_option(study, dim)
            table = _wide(choice.score, dim, ".2f", f"choose_{dim}",
                          f"Best validation accuracy (%) per {dim}, mean over depths and seeds; "
                          f"chosen {dim} per rule: " + ", ".join(
                              f"{r}={v:g}" if isinstance(v, float) else f"{r}={v}"
                              for r, v in zip(choice.rule.values, choice.chosen.values)))
            tables.append(table)
    metric = metric or analysis.default_metric(study)
    if reference in study["rule"].values:
        bd = analysis.breaking_depth(study, margin=margin, reference=reference, metric=metric)
        tables.append(Table("breaking_depth", f"Breaking depth: smallest depth where the {metric} test error exceeds "
                            f"{reference}'s by > {margin} pp and the paired 95% interval excludes 0 ('-': never)",
                            bd.to_dataframe()[["breaking_depth"]].map(lambda v: _fmt(v, ".0f")),
                            bd.to_dataframe()[["breaking_depth"]]))
    on = "validation" if validated else "test"
    conv = analysis.convergence(study, on=on)
    for th in conv.threshold.values:
        tables.append(_wide(conv.epochs_to.sel(threshold=th), "n_hidden", ".2f", f"epochs_to_{th:g}",
                            f"Epochs to {100 * th:g}% {on} accuracy (mean over the seeds that reached it, "
                            "(k/n) if not all did; '-': none did)", over="seed"))
        tables.append(_wide(conv.seconds_to.sel(threshold=th), "n_hidden", ".1f", f"seconds_to_{th:g}",
                            f"Training seconds to {100 * th:g}% {on} accuracy", over="seed"))
    tables.append(_wide(conv.seconds_per_epoch.mean("seed"), "n_hidden", ".2f", "seconds_per_epoch",
                        "Training seconds per epoch (metrics and test evaluation excluded)"))
    for var in ("delta_alignment", "weight_alignment"):
        al = analysis.alignment_summary(study, var)
        tables.append(_wide(al.final.mean("seed"), "layer", ".1f", f"{var}_final", f"{var} at the end (degrees), per layer"))
        # bp's angles and every readout's delta angle are 0 by construction, and layers that a
        # depth lacks (or layer 1's weight angle) are never measured: blank cells, not news
        top = study[var].max("step")
        trivial = ((top < 1e-3) | top.isnull()).all("seed")  # 0 up to the rounding of arccos near 1
        for angle in al.angle.values:
            tables.append(_without(_wide(al.epochs_below.sel(angle=angle), "layer", ".2f", f"{var}_below_{angle:g}",
                                         f"Epoch at which {var} first falls below {angle:g} degrees "
                                         "('-': never; blank: 0 degrees throughout, as bp and the readout's "
                                         "delta, or not measured)",
                                         over="seed"), trivial))
    tables.append(_wide(analysis.gradient_flow(study).mean("seed"), "layer", ".3g", "gradient_flow",
                        "Gradient flow: delta_norm per layer / delta_norm of the readout, at the end"))
    return tables


def problem_runs(study) -> list[str]:
    """One line per diverged or missing run."""
    lines = []
    status = study["status"]
    for idx in zip(*np.nonzero(status.values != "ok")):
        cell = {d: status[d].values[i] for d, i in zip(status.dims, idx)}
        where = " ".join(f"{d}={v}" for d, v in cell.items())
        state = str(status.values[idx])
        extra = f" at step {int(study['diverged_at_step'].values[idx])}" if state == "diverged" else ""
        lines.append(f"{where}: {state}{extra} {str(study['config_hash'].values[idx])}".rstrip())
    return lines


# A finished run whose best accuracy stays below this never left chance (10 %): its
# "selected" error is a number, but not a measurement of the rule (bp at lr 0.3, depth 7).
LEARNED_ACCURACY = 0.2


def stuck_runs(study) -> list[str]:
    """One line per finished (``ok``) run whose best held-out accuracy stayed below 20 %."""
    kind = "validation_accuracy" if "validation_accuracy" in study else "test_accuracy"
    best = study[kind].max("step").where(study["status"] == "ok")
    lines = []
    for idx in zip(*np.nonzero((best < LEARNED_ACCURACY).values)):
        where = " ".join(f"{d}={best[d].values[i]}" for d, i in zip(best.dims, idx))
        lines.append(f"{where}: best {kind.replace('_', ' ')} {100 * float(best.values[idx]):.2f} % "
                     f"{str(study['config_hash'].values[idx])}")
    return lines


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


def _stem(path: str) -> Path:
    """Where report files go: ``study.nc`` -> ``study``; a dir -> itself; a glob -> ``<dir>/combined``."""
    if any(ch in path for ch in "*?["):
        return Path(path).parent / "combined"
    p = Path(path)
    return p.with_suffix("") if p.suffix == ".nc" and not p.is_dir() else p


def main(args) -> int:
    from cortex_fa.cli.common import check_dir_writable
    from cortex_fa.results import open_results
    from cortex_fa.study import combine_runs

    if not np.isfinite(args.margin) or args.margin < 0:
        raise ConfigError(f"--margin must be a finite number of percentage points >= 0, got {args.margin!r}")
    study = open_results(args.path)
    if "rule" not in study.dims:  # a single run: a study of one
        study = combine_runs([study])
    rules = [str(r) for r in study["rule"].values]
    # A rule asked for by name must exist (else its table would silently vanish); the default
    # bp may be absent (a study of fa runs only), and then there is no breaking-depth table.
    reference = "bp" if args.reference is None else args.reference
    if args.reference is not None and reference not in rules:
        raise ConfigError(f"--reference '{args.reference}' is not a rule in the study; "
                          f"{choices_text(rules)}{did_you_mean(args.reference, rules)}")
    stem = _stem(str(args.path))
    if not args.no_write:  # before the tables are printed, not after
        check_dir_writable(stem.parent, f"report files {stem}.*")
    tables = build_tables(study, margin=args.margin, reference=reference, metric=args.metric)
    problems = problem_runs(study)
    print("\n\n".join(render_text(t) for t in tables))
    print("\nDiverged or missing runs:" + ("".join(f"\n  {p}" for p in problems) if problems else " none"))
    stuck = stuck_runs(study)
    if stuck:  # printed only when there are some: a study that learned needs no empty section
        print(f"\nRuns that did not learn (best accuracy below {100 * LEARNED_ACCURACY:.0f} %; their errors "
              "enter the tables above):" + "".join(f"\n  {p}" for p in stuck))
    if args.no_write:
        return 0
    md = [f"# Report: {Path(args.path).name}", "", f"Runs: {int((study.status != 'missing').sum())}; "
          f"dims: {dict(study.sizes)}", ""]
    md += [render_markdown(t) + "\n" for t in tables]
    md += ["### Diverged or missing runs", ""] + ([f"- {p}" for p in problems] or ["none"])
    if stuck:
        md += ["", f"### Runs that did not learn (best accuracy below {100 * LEARNED_ACCURACY:.0f} %)", ""]
        md += [f"- {p}" for p in stuck]
    report = Path(f"{stem}.report.md")
    try:
        report.write_text("\n".join(md) + "\n")
        for t in tables:
            t.data.to_csv(f"{stem}.{t.name}.csv")
    except OSError as exc:
        raise CortexFAError(f"cannot write report files {stem}.*: {exc.strerror or exc}") from None
    print(f"\nwrote {report} and {len(tables)} CSV tables ({stem}.<table>.csv)", file=sys.stderr)
    return 0
