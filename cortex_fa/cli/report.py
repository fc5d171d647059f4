"""``cortex-fa report``: depth-study tables on the terminal, as Markdown and as CSV.

Example::

    cortex-fa report study.nc      # prints tables; writes study.report.md and study.<table>.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from cortex_fa.cli.ending_tables import protocol_tables, replay_patiences, replay_tables
from cortex_fa.cli.tables import Table, interval, render_markdown, render_text, verdict_tables, wide, without
from cortex_fa.errors import ConfigError, CortexFAError, choices_text, did_you_mean


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="tables of a study: errors, verdicts vs bp and breaking depth, convergence, alignment",
        description="Print a study's tables (rule x depth) and write them next to the file as "
                    "<stem>.report.md and <stem>.<table>.csv.",
    )
    p.add_argument("path", help="study file, run file, run directory or quoted glob of run files")
    p.add_argument("--margin", type=float, default=None,
                   help="verdicts and breaking depth: margin in percentage points of test error, turned into whole "
                        "test images (0.5 = 50 of 10,000; default 0.5, or a protocol study's declared margin)")
    p.add_argument("--reference", default=None,
                   help="verdicts and breaking depth: reference rule (default bp, if in the study)")
    p.add_argument("--metric", choices=("selected", "final", "oracle_best"), default=None,
                   help="test error the verdicts compare (default: selected, i.e. at the best-validation "
                        "epoch, when the study has a validation split; else final)")
    p.add_argument("--replay-patience", metavar="P[,P...]", default=None,
                   help="also replay early stopping at these shorter patiences from the runs' histories: the extra "
                        "test errors and the epochs a shorter wait gives (did the runs end on a real plateau?)")
    p.add_argument("--no-write", action="store_true", help="print only; write no files")
    p.set_defaults(func=main)


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
    table = interval(analysis.error_summary(study), kind, "n_hidden", f"{kind}_error", ERROR_TITLES[kind])
    return render_text(table)


def _selection_tables(study) -> list[Table]:
    """Best-validation epoch and epochs trained, with the runs early stopping did not end."""
    from cortex_fa import selection

    sel = selection.selection(study)
    done = sel.epochs_done.where(study["status"] != "missing")
    return [
        wide(sel.best_validation_epoch, "n_hidden", ".1f", "best_validation_epoch",
             "Epoch of best validation accuracy (mean over seeds)", over="seed"),
        wide(done, "n_hidden", ".1f", "epochs_trained", "Epochs trained (mean over seeds)", over="seed"),
        wide((~sel.converged).where(done.notnull()).sum("seed").where(done.notnull().any("seed")), "n_hidden", ".0f",
             "not_converged", "Runs NOT converged: they reached the epoch maximum before early stopping "
             "ended them (their error is not a converged one; raise --epochs)"),
    ]


def _epochs_trained_table(study) -> Table:
    """Without validation the runs end by their own rule (epoch cap, a training-error target): after how long."""
    from cortex_fa import analysis

    return wide(analysis.epochs_trained(study).where(study["status"] != "missing"), "n_hidden", ".1f",
                "epochs_trained", "Epochs trained (mean over seeds)", over="seed")


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def build_tables(study, *, margin=0.5, reference="bp", metric=None, replay=()) -> list[Table]:
    """Every table of the report, in order: the headline error first."""
    from cortex_fa import analysis, selection
    from cortex_fa.cf import RUN_INTERNAL_DIMS

    s = analysis.error_summary(study)
    validated = analysis.has_validation(study)
    kinds = ("selected", "final", "oracle_best") if validated else ("final", "oracle_best")
    tables = [interval(s, k, "n_hidden", f"{k}_error", ERROR_TITLES[k]) for k in kinds]
    tables += _selection_tables(study) if validated else [_epochs_trained_table(study)]
    if validated:
        options = [d for d in study["status"].dims if d not in ("rule", "n_hidden", "seed", *RUN_INTERNAL_DIMS)]
        for dim in options:
            choice = selection.choose_option(study, dim)
            chosen = ("chosen " + dim + " per rule: " + ", ".join(
                f"{r}={_value(v)}" for r, v in zip(choice.rule.values, choice.chosen.values))
                if len(options) == 1 else f"marginal: mean over {', '.join(o for o in options if o != dim)} too")
            tables.append(wide(choice.score, dim, ".2f", f"choose_{dim}",
                               f"Best validation accuracy (%) per {dim}, mean over depths and seeds; {chosen}"))
        if len(options) > 1:  # several options: the choice is a cell of their grid, not one value per option
            cell = selection.choose_cell(study, options)
            best = "; ".join(f"{r}: " + ", ".join(f"{d}={_value(cell[f'chosen_{d}'].sel(rule=r).item())}"
                                                   for d in options) for r in cell.rule.values)
            tables.append(wide(cell.score, options[-1], ".2f", "choose_cell",
                               f"Best validation accuracy (%) per {' x '.join(options)} cell, mean over depths "
                               f"and seeds; best cell per rule: {best}"))
    tables += protocol_tables(study)
    if reference in study["rule"].values:
        from cortex_fa import verdicts

        tables += verdict_tables(verdicts.verdicts(study, margin=margin, reference=reference, metric=metric))
    on = "validation" if validated else "test"
    conv = analysis.convergence(study, on=on)
    for th in conv.threshold.values:
        tables.append(wide(conv.epochs_to.sel(threshold=th), "n_hidden", ".2f", f"epochs_to_{th:g}",
                           f"Epochs to {100 * th:g}% {on} accuracy (mean over the seeds that reached it, "
                           "(k/n) if not all did; '-': none did)", over="seed"))
        tables.append(wide(conv.seconds_to.sel(threshold=th), "n_hidden", ".1f", f"seconds_to_{th:g}",
                           f"Training seconds to {100 * th:g}% {on} accuracy", over="seed"))
    tables.append(wide(conv.seconds_per_epoch.mean("seed"), "n_hidden", ".2f", "seconds_per_epoch",
                       "Training seconds per epoch (metrics and test evaluation excluded)"))
    for var in ("delta_alignment", "weight_alignment"):
        al = analysis.alignment_summary(study, var)
        tables.append(wide(al.final.mean("seed"), "layer", ".1f", f"{var}_final", f"{var} at the end (degrees), per layer"))
        # bp's angles and every readout's delta angle are 0 by construction, and layers that a
        # depth lacks (or layer 1's weight angle) are never measured: blank cells, not news
        top = study[var].max("step")
        trivial = ((top < 1e-3) | top.isnull()).all("seed")  # 0 up to the rounding of arccos near 1
        for angle in al.angle.values:
            tables.append(without(wide(al.epochs_below.sel(angle=angle), "layer", ".2f", f"{var}_below_{angle:g}",
                                       f"Epoch at which {var} first falls below {angle:g} degrees "
                                       "('-': never; blank: 0 degrees throughout, as bp and the readout's "
                                       "delta, or not measured)",
                                       over="seed"), trivial))
    # What learning wrote (cortex_fa.learned): in wide layers angle(B, W^T) is dominated by W(0)
    for var, spec, title in (("learned_alignment", ".1f", "learned_alignment at the end: angle(B, (W - W0)^T) "
                              "(degrees), per layer"),
                             ("weight_change", ".3g", "weight_change at the end: |W - W0| / |W0|, per layer")):
        if var in study and "layer" in study[var].dims:
            last = analysis.final_value(study, var)
            tables.append(wide(last.mean("seed"), "layer", spec, f"{var}_final", title))
    tables.append(wide(analysis.gradient_flow(study).mean("seed"), "layer", ".3g", "gradient_flow",
                       "Gradient flow: delta_norm per layer / delta_norm of the readout, at the end"))
    return tables + replay_tables(study, replay)


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


def _stem(path: str) -> Path:
    """Where report files go: ``study.nc`` -> ``study``; a dir -> itself; a glob -> ``<dir>/combined``."""
    if any(ch in path for ch in "*?["):
        return Path(path).parent / "combined"
    p = Path(path)
    return p.with_suffix("") if p.suffix == ".nc" and not p.is_dir() else p


def main(args) -> int:
    from cortex_fa import verdicts
    from cortex_fa.cli.common import check_dir_writable
    from cortex_fa.results import open_results
    from cortex_fa.study import combine_runs

    if args.margin is not None and (not np.isfinite(args.margin) or args.margin < 0):
        raise ConfigError(f"--margin must be a finite number of percentage points >= 0, got {args.margin!r}")
    study = open_results(args.path)
    if "rule" not in study.dims:  # a single run: a study of one
        study = combine_runs([study])
    declared = verdicts.declared_defaults(study)  # a protocol study's own reference, margin and metric
    for name in ("reference", "margin", "metric"):
        if getattr(args, name) is None and declared.get(name) is not None:
            setattr(args, name, declared[name])
    if args.margin is None:
        args.margin = 0.5
    replay = replay_patiences(args.replay_patience, study)
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
    tables = build_tables(study, margin=args.margin, reference=reference, metric=args.metric, replay=replay)
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
