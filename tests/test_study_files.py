"""Committed study files open, and the tables quoted from them in the docs match them.

A docs table that quotes a study file is preceded by ``<!-- table: NAME KIND -->``
(NAME: ``docs/data/NAME.nc``, or a folder ``docs/data/NAME/`` of a study's
chunks ``study_*.nc``, per depth or per seed, combined as ``cortex-fa protocol
combine`` combines them; KIND: which quantity). Each such table is
recomputed here from the file with :mod:`cortex_fa.analysis`, formatted as
``cortex-fa report`` formats it, and compared cell by cell.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from cortex_fa import analysis, presets, reproduction, selection
from cortex_fa.results import open_results

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "docs" / "data"
MARKER = re.compile(r"<!-- table: (?P<name>[\w.-]+) (?P<kind>\w+) -->\n(?P<table>(\|.*\|\n)+)")
HYBRID_MARKER = re.compile(r"<!-- hybrid-table: (?P<name>[\w.-]+) -->\n(?P<table>(\|.*\|\n)+)")


def quoted_tables():
    for page in sorted((ROOT / "docs").glob("*.md")):
        for m in MARKER.finditer(page.read_text()):
            rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in m["table"].splitlines()]
            yield pytest.param(m["name"], m["kind"], rows[0], rows[2:], id=f"{page.stem}:{m['name']}:{m['kind']}")


def open_quoted(name):
    """``docs/data/NAME.nc``, or the chunks ``study_*.nc`` in ``docs/data/NAME/`` combined into one study."""
    from cortex_fa.chunks import combine_chunks

    folder = DATA / name
    if folder.is_dir():
        return combine_chunks([open_results(p) for p in sorted(folder.glob("study_*.nc"))])
    return open_results(DATA / f"{name}.nc")


def _interval_cell(summary, kind, **at):
    mean, lo, hi = (float(summary[f"{kind}_{k}"].sel(**at)) for k in ("mean", "lo", "hi"))
    return f"{mean:.2f}" + ("" if not np.isfinite(lo) else f" [{lo:.2f}, {hi:.2f}]")


GRID_ALIAS = {"w": "init_scale", "b": "feedback_scale"}  # the bounds' names in Lillicrap et al. 2016


def expected_cell(study, kind, rule, column):
    """The cell of ``kind`` for ``rule`` under a header such as 'depth 3' or 'lr 0.3' or 'chosen'."""
    if kind in ("final_error", "selected_error", "oracle_best_error"):
        depth = int(column.split()[1])
        return _interval_cell(analysis.error_summary(study), kind.replace("_error", ""), rule=rule, n_hidden=depth)
    if kind == "verdict":  # header 'depth N': rule minus bp in points, paired over seeds, and the verdict
        from cortex_fa import verdicts

        c = verdicts.verdicts(study).sel(rule=rule, n_hidden=int(column.split()[1]))
        mean, lo, hi = (float(c[f"diff_{k}_pp"]) for k in ("mean", "lo", "hi"))
        return f"{mean:+.2f} [{lo:+.2f}, {hi:+.2f}] {c.verdict.item()}"
    if kind == "breaking_depth":  # header 'vs REF': the first depth that falls behind REF (verdicts.breaking_depth)
        from cortex_fa import verdicts

        return verdicts.breaking_depth(study, reference=column.split()[1]).sel(rule=rule).item()
    if kind == "chosen_lr":  # header 'depth N': the protocol's rate for the cell
        return f"{float(study['chosen_lr'].sel(rule=rule, n_hidden=int(column.split()[1]))):g}"
    if kind == "best_validation_by_seed":  # header 'seed N', one row per rule at the study's one depth
        best = 100.0 * study["validation_accuracy"].max("step").sel(rule=rule).squeeze("n_hidden", drop=True)
        return f"{float(best.sel(seed=int(column.split()[1]))):.2f}"
    if kind == "best_validation_epoch_by_seed":  # header 'seed N': the epoch a run's error is selected at
        val = study["validation_accuracy"].sel(rule=rule, seed=int(column.split()[1])).squeeze("n_hidden", drop=True)
        epoch = analysis.epoch_of(study).sel(rule=rule, seed=int(column.split()[1])).squeeze("n_hidden", drop=True)
        return f"{float(epoch.values[int(analysis.first_argmax(val.values))]):g}"
    if kind == "grid_best_validation":  # row 'w V', header 'b V': a grid cell's best validation accuracy (%)
        at = {GRID_ALIAS[rule.split()[0]]: float(rule.split()[1]), GRID_ALIAS[column.split()[0]]: float(column.split()[1])}
        best = 100.0 * study["validation_accuracy"].max("step").sel(at)
        return f"{float(best.mean([d for d in best.dims if d not in at])):.2f}"
    if kind == "choose_lr":
        choice = selection.choose_option(study, "lr")
        if column == "chosen":
            return f"{float(choice.chosen.sel(rule=rule)):g}"
        return f"{float(choice.score.sel(rule=rule, lr=float(column.split()[1]))):.2f}"
    if kind == "schedule_ablation":  # rows 'RULE SCHEDULE' at the study's one depth; headers below
        return schedule_ablation_cell(study, *rule.split(), column)
    if kind == "ending":  # header 'depth N': per seed, how the run ended and after how many epochs
        at = dict(rule=rule, n_hidden=int(column.split()[1]))
        epochs = analysis.epochs_trained(study).sel(**at)
        return "; ".join(f"{study['stop_reason'].sel(**at, seed=s).item()} after {float(epochs.sel(seed=s)):g}"
                         for s in study.seed.values if study["status"].sel(**at, seed=s).item() != "missing")
    if kind.endswith("_end"):  # rows 'RULE depth N', header 'layer K': a metric's last value, mean over seeds
        name, depth = rule.split()[0], int(rule.split()[2])
        value = analysis.final_value(study, kind[:-len("_end")]).sel(rule=name, n_hidden=depth)
        return f"{float(value.sel(layer=int(column.split()[1])).mean('seed')):.1f}"
    if kind == "preset_comparison":  # NAME is the preset; headers published/measured/shortfall/verdict
        return comparison_cells(study.attrs["preset_name"], rule)[column.split()[0]]
    raise AssertionError(f"no recipe for table kind {kind!r}")


def schedule_ablation_cell(study, rule, schedule, column):
    """One cell of the depth-7 schedule ablation: a run cell of ``cortex-fa report --replay-patience P``."""
    from cortex_fa import stopping
    from cortex_fa.cli.ending_tables import stop_reasons

    at = dict(rule=rule, lr_schedule=schedule, n_hidden=int(study.n_hidden.item()))
    if column == "selected error (%)":
        return _interval_cell(analysis.error_summary(study), "selected", **at)
    if column == "epochs trained":
        return f"{float(selection.selection(study).epochs_done.sel(**at).mean('seed')):.1f}"
    if column == "ended by":
        counts = stop_reasons(study).sel(**at)
        return ", ".join(f"{int(n)} {str(r)}" for r, n in zip(counts.stop_reason.values, counts.values) if n)
    patience = int(column.split()[1])
    if column.endswith("cost (images)"):  # 'patience P cost (images)'
        return _interval_cell(stopping.replay_cost(study, patience), "cost", **at)
    if column.endswith("epochs saved"):  # 'patience P epochs saved'
        return f"{float(stopping.replay_cost(study, patience).epochs_saved.sel(**at)):.1f}"
    raise AssertionError(f"no schedule_ablation column {column!r}")


@pytest.mark.parametrize("path", sorted(DATA.glob("*.nc")) + sorted(DATA.glob("*/*.nc")) + sorted(DATA.glob("*/pending/*.nc")),
                         ids=lambda p: str(p.relative_to(DATA)))
def test_committed_study_file_opens(path):
    study = open_results(path)
    assert {"rule", "n_hidden", "seed", "step", "layer"} <= set(study.dims)
    assert (study["status"] != "missing").sum() > 0


def test_every_committed_study_is_quoted_somewhere():
    quoted = {p.values[0] for p in quoted_tables()}
    assert {p.name for p in DATA.iterdir() if p.is_dir() and any(p.glob("study_*.nc"))} <= quoted
    quoted |= {m["name"] for page in (ROOT / "docs").glob("*.md") for m in HYBRID_MARKER.finditer(page.read_text())}
    assert {p.stem for p in DATA.glob("*.nc")} <= quoted


def preset_study(preset):
    """A preset's committed study: ``docs/data/PRESET.nc``, or its seed chunks in ``docs/data/PRESET/``; else None."""
    if (DATA / f"{preset}.nc").exists() or (DATA / preset).is_dir():
        return open_quoted(preset)
    return None


def comparison_cells(preset, rule):
    """``cortex-fa reproduce``'s comparison of ``rule`` in the preset's committed study, as docs cells."""
    row = next(r for r in presets.load(preset).compare(preset_study(preset)) if r["rule"] == rule)
    return {"published": f"{row['published']:g}",
            "measured": f"{row['mean']:.2f} [{row['lo']:.2f}, {row['hi']:.2f}]",
            "shortfall": f"{row['shortfall']:+.2f}",
            "verdict": reproduction.label(row["verdict"], row["kind"])}


def test_the_reproductions_status_table_matches_the_committed_preset_studies():
    """docs/reproductions.md's status table: one row per preset and rule, from the preset's study if committed."""
    tables = [t for t in quoted_tables() if t.values[:2] == ("presets", "reproductions")]
    assert len(tables) == 1, "the status table's marker is missing"
    _, _, header, rows = tables[0].values
    assert {p.stem for p in DATA.glob("*.nc")} & set(presets.available()), "no preset study committed yet"
    for row in rows:
        preset, rule = row[0].strip("`"), row[1]
        cells = dict(zip((h.split()[0] for h in header[2:]), row[2:]))
        if preset_study(preset) is None:
            assert cells["measured"] == "not run yet", f"{preset}: no docs/data/{preset}.nc or docs/data/{preset}/"
            assert cells["published"] == f"{presets.load(preset).published_errors[rule]:g}"
            continue
        assert cells == comparison_cells(preset, rule), f"{preset} / {rule}"


def test_the_count_of_reproduced_papers_is_what_the_committed_files_say():
    """docs/reproductions.md counts publications only: a peer measurement is never a reproduced paper."""
    text = re.sub(r"\s+", " ", (ROOT / "docs" / "reproductions.md").read_text())
    m = re.search(r"Of the (\d+) measurements of a published number so far \([^)]*\), \*\*(\d+) (?:is|are) "
                  r"reproduced, (\d+) not reproduced and (\d+) undetermined\*\*", text)
    assert m, "the count sentence is missing"
    rows = [row for name in presets.available() if preset_study(name) is not None
            for row in presets.load(name).compare(preset_study(name))]
    papers = [r for r in rows if r["kind"] == reproduction.PUBLICATION and r["n"] > 0]
    verdicts = [r["verdict"] for r in papers]
    expected = (len(papers), verdicts.count(reproduction.REPRODUCED), verdicts.count(reproduction.NOT_REPRODUCED),
                verdicts.count(reproduction.UNDETERMINED))
    assert tuple(map(int, m.groups())) == expected
    assert reproduction.count_reproduced(rows) == (expected[1], expected[0])


@pytest.mark.parametrize("name,kind,header,rows", [t for t in quoted_tables() if t.values[1] != "reproductions"])
def test_quoted_table_matches_its_study_file(name, kind, header, rows):
    study = open_quoted(name)
    study.attrs["preset_name"] = name
    assert rows, "an empty table"
    for row in rows:
        rule = row[0]
        for column, cell in zip(header[1:], row[1:]):
            assert cell == expected_cell(study, kind, rule, column), f"{name} {kind}: {rule} / {column}"


def test_a_run_stuck_at_chance_is_named_by_the_report():
    """bp at lr 0.3 with 7 columns, seed 1, finished 'ok' at 10.9 % validation accuracy; seed 0 learned."""
    from cortex_fa.cli.report import stuck_runs

    study = open_results(DATA / "bp_lr0.3_depth7.nc")
    lines = stuck_runs(study)
    assert len(lines) == 1 and lines[0].startswith("rule=bp n_hidden=7 seed=1:") and "10.90 %" in lines[0]
    assert stuck_runs(open_results(DATA / "depth_study_converged.nc")) == []



@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.stem)
def test_hybrid_tables_in_the_docs_match_their_files(page):
    """A table after ``<!-- hybrid-table: NAME -->`` is exactly ``cortex_fa.hybrid.table`` of docs/data/NAME.nc."""
    from cortex_fa import hybrid

    for m in HYBRID_MARKER.finditer(page.read_text()):
        assert m["table"].strip() == hybrid.table(open_results(DATA / f"{m['name']}.nc")).strip(), m["name"]


def quoted(v, rule, depth):
    """A paired difference as the docs quote it: '+0.55 [+0.43, +0.67]' (points)."""
    c = (v if rule is None else v.sel(rule=rule)).sel(n_hidden=depth)
    return f"{float(c.diff_mean_pp):+.2f} [{float(c.diff_lo_pp):+.2f}, {float(c.diff_hi_pp):+.2f}]"


def protocol_cost():
    """('9 h 44 min', runs): what ``cortex-fa protocol cost docs/data/depth_protocol/*.nc`` sums."""
    from cortex_fa.training_time import hours_minutes, training_time

    files = sorted((DATA / "depth_protocol").glob("*.nc"))  # as the shell expands the glob
    rows = training_time((p.name, open_results(p)) for p in files)
    return hours_minutes(sum(r["seconds"] for r in rows)), sum(r["counted"] for r in rows)


def test_the_readme_headline_is_what_the_verdicts_say():
    """Every number and verdict of the README's findings, recomputed from the protocol's committed chunks."""
    from cortex_fa import verdicts

    readme = re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
    study = open_quoted("depth_protocol")
    v = verdicts.verdicts(study)
    depths = [int(d) for d in study.n_hidden.values]
    word = lambda rule, d, ref=v: ref.verdict.sel(rule=rule, n_hidden=d).item()  # noqa: E731

    last = max(depths)
    assert f"Depths 1 to {last} are in" in readme and depths == list(range(1, last + 1))
    assert f"feedback alignment keeps up with backprop with one hidden column ({quoted(v, 'fa', 1)} points" in readme
    assert word("fa", 1) == verdicts.KEEPS_UP
    assert f"is undetermined with two ({quoted(v, 'fa', 2)})" in readme and word("fa", 2) == verdicts.UNDETERMINED
    assert f"falls behind from three on, by more at each depth ({quoted(v, 'fa', last)} at depth {last})" in readme
    assert {word("fa", d) for d in depths if d >= 3} == {verdicts.FALLS_BEHIND}
    assert (np.diff(v.diff_mean.sel(rule="fa", n_hidden=[d for d in depths if d >= 2]).values) > 0).all()
    assert ("Sign-concordant feedback (usf, brsf) narrows that gap at every depth from two on without closing it: "
            "it keeps up at depths 1 to 5 and reaches into the margin at depths 6 and 7") in readme
    against_fa = verdicts.verdicts(study, reference="fa")
    assert (against_fa.diff_hi.sel(rule=["usf", "brsf"], n_hidden=[d for d in depths if d >= 2]) < 0).all()
    assert set(v.verdict.sel(rule=["usf", "brsf"], n_hidden=[1, 2, 3, 4, 5]).values.ravel()) == {verdicts.KEEPS_UP}
    assert {word(r, d) for r in ("usf", "brsf") for d in (6, 7)} == {verdicts.UNDETERMINED}
    assert "(dfa, ifa) are undetermined at depths 2 to 4 and fall behind at depth 5" in readme
    assert {word(r, d) for r in ("dfa", "ifa") for d in (2, 3, 4)} == {verdicts.UNDETERMINED}
    assert {word(r, 5) for r in ("dfa", "ifa")} == {verdicts.FALLS_BEHIND}
    assert "at depths 6 and 7 the direct path makes fewer errors than the indirect one" in readme
    assert (verdicts.verdicts(study, reference="ifa").diff_hi.sel(rule="dfa", n_hidden=[6, 7]) < 0).all()
    # no breaking depth is determined: each rule is undetermined at or before its first 'falls behind'
    assert "The declared rule therefore names no breaking depth" in readme
    assert ("fa, dfa and ifa are each undetermined at depth 2, before they first fall behind (fa at depth 3, dfa "
            "and ifa at 5); usf and brsf never fall behind") in readme
    first_behind = {r: min([d for d in depths if word(r, d) == verdicts.FALLS_BEHIND], default=None)
                    for r in ("fa", "dfa", "ifa", "usf", "brsf")}
    assert first_behind == {"fa": 3, "dfa": 5, "ifa": 5, "usf": None, "brsf": None}
    assert verdicts.breaking_depth(v).sel(rule=["fa", "usf", "brsf", "dfa", "ifa"]).values.tolist() == \
        [verdicts.UNDETERMINED] * 5
    n_study = study["stop_reason"].size
    spent, n_runs = protocol_cost()
    assert f"Depths 1 to {last} are in: {n_study} study runs, {n_runs} with the rate selection, {spent} of training" in readme
    # kp ahead of bp somewhere; bp_wd too; against bp_wd kp's interval lies below zero only at depth 2
    assert "Kolen-Pollack makes fewer errors than backprop, but backprop with the same weight decay does too" in readme
    assert (v.diff_hi.sel(rule="kp") < 0).any() and (v.diff_hi.sel(rule="bp_wd") < 0).any()
    against_wd = verdicts.verdicts(study, reference="bp_wd")
    assert "against that control Kolen-Pollack makes fewer errors only at depth 2" in readme
    assert [d for d in depths if float(against_wd.diff_hi.sel(rule="kp", n_hidden=d)) < 0] == [2]


def test_the_protocol_findings_on_the_depth_page_are_what_the_chunks_say():
    """The prose under the protocol's tables in docs/depth-study.md, recomputed from its chunks."""
    from cortex_fa import verdicts

    study = open_quoted("depth_protocol")
    page = re.sub(r"\s+", " ", (ROOT / "docs" / "depth-study.md").read_text())
    v = verdicts.verdicts(study)
    against_wd = verdicts.verdicts(study, reference="bp_wd")
    depths = [int(d) for d in study.n_hidden.values]
    word = lambda rule, d, ref=v: ref.verdict.sel(rule=rule, n_hidden=d).item()  # noqa: E731
    below_zero = lambda rule, ref=v: [d for d in depths if float(ref.diff_hi.sel(rule=rule, n_hidden=d)) < 0]  # noqa: E731
    above_zero = lambda rule, ref=v: [d for d in depths if float(ref.diff_lo.sel(rule=rule, n_hidden=d)) > 0]  # noqa: E731
    count = verdicts.misclassified(study).sel(n_hidden=1)
    # one hidden column: fa, dfa and ifa draw the same B from paired streams, so they are one rule
    assert "their rows agree to the image" in page
    assert (count.sel(rule="fa") == count.sel(rule="dfa")).all() and (count.sel(rule="fa") == count.sel(rule="ifa")).all()
    assert set(v.verdict.sel(n_hidden=1).drop_sel(rule="bp").values) == {verdicts.KEEPS_UP}
    assert "At depth 2 the random-feedback rules (fa, dfa, ifa) already reach into the margin" in page
    assert {word(r, 2) for r in ("fa", "dfa", "ifa")} == {verdicts.UNDETERMINED}
    assert {word(r, 2) for r in ("usf", "brsf")} == {verdicts.KEEPS_UP}
    # fa falls behind from depth 3, by more at each depth; its breaking depth stays undetermined
    assert "From depth 3 on fa falls behind" in page and "at every depth from 3 to 7, and its gap grows with depth" in page
    assert {word("fa", d) for d in depths if d >= 3} == {verdicts.FALLS_BEHIND} and max(depths) == 7
    assert f"to {quoted(v, 'fa', 7)} points at depth 7" in page
    gaps = v.diff_mean.sel(rule="fa", n_hidden=[d for d in depths if d >= 2]).values
    assert (np.diff(gaps) > 0).all()
    assert verdicts.breaking_depth(v).sel(rule=["fa", "dfa", "ifa"]).values.tolist() == [verdicts.UNDETERMINED] * 3
    assert "dfa and ifa are undetermined at depths 2 to 4 and fall behind at depth 5" in page
    assert {word(r, d) for r in ("dfa", "ifa") for d in (2, 3, 4)} == {verdicts.UNDETERMINED}
    assert {word(r, 5) for r in ("dfa", "ifa")} == {verdicts.FALLS_BEHIND}
    assert "(dfa at the rate 1.0 its validation score chose there)" in page
    assert float(study["chosen_lr"].sel(rule="dfa", n_hidden=5)) == 1.0
    assert "At depths 6 and 7 ifa falls behind again, by more at each depth, while dfa, back at rate 0.3, is undetermined" in page
    assert {(word("ifa", d), word("dfa", d)) for d in (6, 7)} == {(verdicts.FALLS_BEHIND, verdicts.UNDETERMINED)}
    assert float(v.diff_mean.sel(rule="ifa", n_hidden=7)) > float(v.diff_mean.sel(rule="ifa", n_hidden=6))
    assert study["chosen_lr"].sel(rule="dfa", n_hidden=[6, 7]).values.tolist() == [0.3, 0.3]
    # direct against indirect: dfa minus ifa, paired
    dfa_ifa = verdicts.verdicts(study, reference="ifa").sel(rule="dfa")
    assert all(dfa_ifa.diff_lo.sel(n_hidden=d) < 0 < dfa_ifa.diff_hi.sel(n_hidden=d) for d in (2, 3, 4))
    assert f"({quoted(dfa_ifa, None, 6)} and {quoted(dfa_ifa, None, 7)} points)" in page
    assert (dfa_ifa.diff_hi.sel(n_hidden=[6, 7]) < 0).all() and float(dfa_ifa.diff_lo.sel(n_hidden=5)) > 0
    assert f"more ({quoted(dfa_ifa, None, 5)})" in page
    assert "usf and brsf keep up at depths 1 to 5; at depths 6 and 7 both reach into the margin (undetermined)" in page
    assert set(v.verdict.sel(rule=["usf", "brsf"], n_hidden=[1, 2, 3, 4, 5]).values.ravel()) == {verdicts.KEEPS_UP}
    assert {word(r, d) for r in ("usf", "brsf") for d in (6, 7)} == {verdicts.UNDETERMINED}
    assert set(verdicts.breaking_depth(v).sel(rule=["usf", "brsf"]).values) == {verdicts.UNDETERMINED}
    # sign-concordant against fa: below zero from depth 2, more at each depth; usf and brsf indistinguishable
    against_fa = verdicts.verdicts(study, reference="fa")
    for rule in ("usf", "brsf"):
        assert below_zero(rule, against_fa) == [d for d in depths if d >= 2] or below_zero(rule, against_fa) == depths
        assert (np.diff(against_fa.diff_mean.sel(rule=rule).values) < 0).all()
    assert f"{quoted(against_fa, 'usf', 7)} (usf) and {quoted(against_fa, 'brsf', 7)} (brsf) points at depth 7" in page
    brsf_usf = verdicts.verdicts(study, reference="usf").sel(rule="brsf")
    assert "the interval of brsf minus usf covers zero at every depth" in page
    assert ((brsf_usf.diff_lo < 0) & (brsf_usf.diff_hi > 0)).all()
    # the control: bp_wd ahead of bp (whole interval below zero) where the page says, most at depth 5
    assert "`bp_wd` makes fewer errors than bp at depths 1, 4, 5, 6 and 7" in page
    assert below_zero("bp_wd") == [1, 4, 5, 6, 7]
    assert int(np.argmin(v.diff_mean.sel(rule="bp_wd").values)) == depths.index(5)
    assert "kp makes fewer errors than bp at depths 2, 3, 5 and 7" in page
    assert below_zero("kp") == [2, 3, 5, 7]
    assert "Against `bp_wd` it makes fewer errors only at depth 2" in page and below_zero("kp", against_wd) == [2]
    assert "at depths 1 and 5 it makes more errors than `bp_wd`" in page and above_zero("kp", against_wd) == [1, 5]
    assert {word("kp", d, against_wd) for d in (1, 5)} == {verdicts.KEEPS_UP}
    n_runs = study["stop_reason"].size
    assert f"Every one of the {n_runs} study runs ended by early stopping" in page and n_runs == 8 * 8 * 7
    assert set(np.unique(study["stop_reason"].values)) == {"early_stop"}


def test_the_protocol_cost_on_the_depth_page_is_what_its_files_say():
    """The training time the page quotes is what ``cortex-fa protocol cost docs/data/depth_protocol/*.nc`` sums."""
    page = re.sub(r"\s+", " ", (ROOT / "docs" / "depth-study.md").read_text())
    assert "cortex-fa protocol cost docs/data/depth_protocol/*.nc" in page
    m = re.search(r"\*\*((?:\d+ h \d\d min)|(?:\d+ min)) of training in (\d+) runs\*\*", page)
    assert m, "the page quotes no total training time"
    assert (m[1], int(m[2])) == protocol_cost()


def test_the_hybrid_page_quotes_what_its_block_prints():
    """docs/hybrid-study.md shows a python block and, below it, its output: they must agree."""
    import contextlib
    import io
    import os

    page = (ROOT / "docs" / "hybrid-study.md").read_text()
    code = re.search(r"```python\n(.*?)```", page, re.S)[1]
    shown = re.search(r"```text\n(.*?)```", page, re.S)[1]
    out, here = io.StringIO(), os.getcwd()
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out):
            exec(compile(code, "hybrid-study.md", "exec"), {})
    finally:
        os.chdir(here)
    assert out.getvalue() == shown


def test_the_schedule_ablation_findings_are_what_its_chunks_say():
    """The prose under the depth-7 schedule ablation in docs/depth-study.md, recomputed from its seed chunks."""
    from cortex_fa import stopping, verdicts

    study = open_quoted("depth7_schedule")
    page = re.sub(r"\s+", " ", (ROOT / "docs" / "depth-study.md").read_text())
    assert study.sizes["seed"] == 3 and int(study.n_hidden.item()) == 7
    # plateau: patience 6 and 4 select exactly what patience 12 selected, in every run
    assert "Under the protocol's plateau schedule, patience 6 loses nothing." in page
    for patience in (4, 6):
        cost = stopping.replay_cost(study, patience).sel(lr_schedule="plateau")
        assert (cost.cost_lo == 0).all() and (cost.cost_hi == 0).all() and (cost.cost_mean == 0).all()
    assert set(np.unique(study["stop_reason"].values)) == {"early_stop"}
    assert float(selection.selection(study).epochs_done.max()) < 100
    # constant: fa finds later validation bests, which select no better test error
    fa_constant = stopping.replay_cost(study, 6).sel(rule="fa", lr_schedule="constant").squeeze()
    assert f"patience 6 would have saved {float(fa_constant.epochs_saved):.1f} epochs on average" in page
    assert float(fa_constant.epochs_saved) > 6
    lo, mean, hi = (float(fa_constant[f"cost_{k}"]) for k in ("lo", "mean", "hi"))
    assert f"patience 6 minus 12: {mean:.2f} [{lo:.2f}, {hi:.2f}] images" in page and lo < 0 < hi and mean <= 0
    # fa fits its training batches further at a constant rate
    best_train = (100 * study.train_accuracy.max("step")).mean("seed").sel(rule="fa").squeeze()
    assert (f"running training accuracy {float(best_train.sel(lr_schedule='constant')):.1f} % against "
            f"{float(best_train.sel(lr_schedule='plateau')):.1f} % under the plateau schedule") in page
    # ifa: the schedule helps, paired by seed
    errors = analysis.error_summary(study).selected_mean.sel(rule="ifa").squeeze()
    assert (f"{float(errors.sel(lr_schedule='constant')):.2f} % against "
            f"{float(errors.sel(lr_schedule='plateau')):.2f} %") in page
    count = verdicts.misclassified(study).sel(rule="ifa").squeeze()
    paired = count.sel(lr_schedule="plateau") - count.sel(lr_schedule="constant")
    mean, lo, hi, _ = analysis.t_interval(paired.values.ravel())
    assert f"{mean:.1f} [{lo:.1f}, {hi:.1f}] misclassified test images" in page and hi < 0
    change = analysis.final_value(study, "weight_change").mean("seed").sel(rule="ifa").squeeze()
    assert "`weight_change` above 1 from layer 4 up" in page
    assert (change.sel(lr_schedule="constant", layer=slice(4, None)) > 1).all()
    assert (change.sel(lr_schedule="plateau", layer=slice(2, 7)) < 1).all()


def test_the_nokland_paragraph_is_what_its_seed_chunks_say():
    """docs/reproductions.md on the author's recipe: per-seed final errors, the near-miss, how the runs ended, cost."""
    study = preset_study("nokland2016_dfa")
    page = re.sub(r"\s+", " ", (ROOT / "docs" / "reproductions.md").read_text())
    assert study.seed.values.tolist() == [0, 1, 2]
    assert "`nokland2016_dfa`, which now follows the author's code, ran seeds 0, 1 and 2" in page
    final = (100 * (1 - study.test_accuracy.isel(step=-1))).squeeze().values
    assert "The three runs end at {:.2f} %, {:.2f} % and {:.2f} %".format(*final) in page
    assert np.all(np.abs(final - 1.45) < 0.2) and float(final.mean()) < 1.78 - 0.2 + 0.005
    row = presets.load("nokland2016_dfa").compare(study)[0]
    lo, hi = row["lo"] - row["published"], row["hi"] - row["published"]
    assert f"[{lo:+.2f}, {hi:+.2f}] ({hi:+.4f} to four places)" in page
    assert f"{hi - row['margin']:.3f} points beyond it" in page and 0 < hi - row["margin"] < 0.005
    assert row["verdict"] == reproduction.UNDETERMINED and -row["margin"] < lo
    assert set(study.stop_reason.values.ravel()) == {"epoch_cap"} and float(study.epoch.max()) == 299
    train_error = 100 * (1 - study.train_accuracy.isel(step=-1)).squeeze().values
    assert "running training error in the last epoch still {:.2f} %, {:.2f} % and {:.2f} % with dropout on".format(
        *train_error) in page and np.all(train_error > 50 * 0.01)  # far from the 0.01 % target
    minutes = study.wall_time.max("step").squeeze().values / 60
    assert "12 s an epoch, 62 min of training per run), seed 2" in page and np.all(np.round(minutes[:2]) == 62)
    assert "about 11 s an epoch, 54 min)" in page and round(minutes[2]) == 54
    assert np.all(np.abs(minutes[:2] * 60 / 299 - 12) < 0.5) and abs(minutes[2] * 60 / 299 - 11) < 0.5


def test_the_tuned_lillicrap_preset_runs_at_the_bounds_stage_1_chose():
    """Stage 2 (lillicrap2016_tuned) uses the (w, b) with the best validation accuracy of stage 1, as the page says."""
    study = open_quoted("lillicrap2016_scales")
    best = 100.0 * study["validation_accuracy"].max("step")
    best = best.mean([d for d in best.dims if d not in ("init_scale", "feedback_scale")])
    i, j = np.unravel_index(int(np.argmax(best.values)), best.shape)  # the first maximum in grid order
    cell = best.isel(init_scale=i, feedback_scale=j)
    w, b = float(cell.init_scale), float(cell.feedback_scale)
    assert {(c.init_scale, c.feedback_scale) for c in presets.load("lillicrap2016_tuned").spec().configs()} == {(w, b)}
    page = re.sub(r"\s+", " ", (ROOT / "docs" / "reproductions.md").read_text())
    assert f"the best is w = {w:g}, b = {b:g} ({float(cell):.2f} %)" in page
    reason = study.stop_reason.squeeze(["rule", "n_hidden", "seed"])
    small_b, b5 = reason.sel(feedback_scale=[0.05, 0.2, 0.5, 1.0]), reason.sel(feedback_scale=5.0)
    assert (small_b == "epoch_cap").all() and (b5 == "early_stop").all()
    assert [str(reason.sel(feedback_scale=b, init_scale=w).item()) for b in (2.0, 10.0) for w in (0.01, 0.05, 0.2)] == \
        ["epoch_cap", "epoch_cap", "early_stop"] * 2
    assert str(reason.sel(init_scale=w, feedback_scale=b).item()) == "epoch_cap"
    rise = (best.sel(feedback_scale=2.0) - best.sel(feedback_scale=0.05)).values
    assert f"rises by {rise.min():.1f} to {rise.max():.1f} points at every w" in page
    spread = (best.max("init_scale") - best.min("init_scale"))
    assert f"by at most {float(spread.sel(feedback_scale=slice(0.2, None)).max()):.2f} points from b = 0.2 on" in page
    assert round(float(spread.sel(feedback_scale=0.05))) == 1
    assert "updates 130 times smaller than b = 10 does" in page and round(10 / np.sqrt(6 / 1010), -1) == 130
    from cortex_fa.training_time import hours_minutes, training_time

    chunks = sorted((DATA / "lillicrap2016_scales").glob("study_*.nc"))
    rows = training_time((p.name, open_results(p)) for p in chunks)
    total = hours_minutes(sum(r["seconds"] for r in rows))
    assert f"holds the {['', 'one', 'two', 'three', 'four', 'five'][len(chunks)]} chunks: 21 runs, {total} of training" \
        in page and sum(r["counted"] for r in rows) == 21 == int((study.status != "missing").sum())


def test_the_tuned_lillicrap_paragraph_is_what_its_file_says():
    """Stage 2 prose: how the runs ended, bp still learning, fa minus bp paired in images, the cost."""
    from cortex_fa import verdicts
    from cortex_fa.training_time import hours_minutes, training_time

    study = open_quoted("lillicrap2016_tuned")
    page = re.sub(r"\s+", " ", (ROOT / "docs" / "reproductions.md").read_text())
    reason = study.stop_reason.squeeze("n_hidden")
    assert (reason.sel(rule="bp") == "epoch_cap").all() and (reason.sel(rule="fa") == "early_stop").all()
    fa_row = next(r for r in presets.load("lillicrap2016_tuned").compare(study) if r["rule"] == "fa")
    lo, hi = fa_row["lo"] - fa_row["published"], fa_row["hi"] - fa_row["published"]
    assert f"[{lo:+.2f}, {hi:+.2f}] inside the 0.3-point margin (its lower end by {lo + 0.3:.2f} points)" in page
    bp = study.sel(rule="bp").squeeze("n_hidden")
    error_at = {e: float((100 * (1 - bp.test_accuracy.sel(step=int(e * bp.steps_per_epoch.max())))).mean())
                for e in (250, 300)}
    assert f"its test error still falling ({error_at[250]:.2f} % at epoch 250, {error_at[300]:.2f} % at 300" in page
    count = verdicts.misclassified(study).squeeze("n_hidden")
    mean, lo, hi, _ = analysis.t_interval((count.sel(rule="fa") - count.sel(rule="bp")).values)
    assert f"fa makes {mean:.1f} [{lo:.1f}, {hi:+.1f}] more test errors than bp" in page and lo < 0 < hi
    config = presets.load("lillicrap2016_tuned").spec().configs()[0]
    assert "a thousand times larger" in page and config.feedback_scale / config.init_scale == 1000
    (row,) = training_time([("tuned", study)])
    assert f"{hours_minutes(row['seconds'])} of training for the six runs" in page and row["runs"] == 6
