"""docs/reproductions.md on Nøkland's Table 1 shapes says what the committed chunks say.

The tables of that section are recomputed by ``test_study_files.py``; here
the prose around them: which chunks ran and what they cost, the spread of the
rules per shape, how the runs ended, what three paired seeds decide at 7 x 240
(nothing) and what they agree on, the delta angles through the 7-column stack,
and the chunks that wait for a seed to run at every depth.
"""

from __future__ import annotations

import json
import re

import pytest

from cortex_fa import analysis, verdicts
from cortex_fa.chunks import combine_chunks
from cortex_fa.errors import ResultsError
from cortex_fa.results import open_results

from test_study_files import DATA, ROOT, open_quoted

SHAPES = ("nokland2016_table1_240", "nokland2016_table1_800")
PENDING = DATA / "nokland2016_table1_800" / "pending"  # seeds that have not yet run at every depth


@pytest.fixture(scope="module")
def page():
    return re.sub(r"\s+", " ", (ROOT / "docs" / "reproductions.md").read_text())


@pytest.fixture(scope="module")
def studies():
    return {name: open_quoted(name) for name in SHAPES}


def final_errors(study):
    """Final test error (%) per rule and depth, seed 0."""
    return (100 * (1 - analysis.final_value(study, "test_accuracy"))).sel(seed=0)


def _and(values) -> str:
    """[1] -> '1', [1, 2] -> '1 and 2', [1, 2, 3] -> '1, 2 and 3'."""
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _signed(values) -> str:
    return _and([f"{v:+d}" for v in values])


def _verdict_text(cell, rule) -> str:
    mean, lo, hi = (float(cell[f"diff_{k}_pp"].sel(rule=rule)) for k in ("mean", "lo", "hi"))
    return f"{rule} {cell.verdict.sel(rule=rule).item()} ({mean:+.2f} [{lo:+.2f}, {hi:+.2f}] points)"


def test_the_chunks_and_their_cost_are_what_the_page_says(page, studies):
    from cortex_fa.training_time import hours_minutes, training_time

    assert studies["nokland2016_table1_240"].seed.values.tolist() == [0, 1, 2]
    assert studies["nokland2016_table1_240"].n_hidden.values.tolist() == [7]
    assert studies["nokland2016_table1_800"].seed.values.tolist() == [0]
    assert studies["nokland2016_table1_800"].n_hidden.values.tolist() == [1, 2, 3, 4]
    chunks = sorted(DATA.glob("nokland2016_table1_*/study_*.nc"))
    rows = training_time((p.name, open_results(p)) for p in chunks)
    runs = sum(r["counted"] for r in rows)
    total = hours_minutes(sum(r["seconds"] for r in rows))
    assert "**Seeds 0, 1 and 2 have run** at 7 x 240, and seed 0 at every depth of 800 units " \
        f"({runs} runs, {total} of training)" in page
    assert runs == 3 * 3 + 3 * 4 == sum(int((s.status == "ok").sum()) for s in studies.values())


def test_the_800_unit_shapes_end_close_together_and_fit_the_training_set(page, studies):
    study = studies["nokland2016_table1_800"]
    error = final_errors(study)
    spread = float((error.max("rule") - error.min("rule")).max())
    assert f"the three rules end within {spread:.2f} points of one another at every depth" in page
    assert (study.stop_reason == "train_error_target").all()
    train_error = 100 * (1 - analysis.final_value(study, "train_accuracy"))
    assert (train_error <= 0.01 + 1e-9).all()
    epochs = analysis.epochs_trained(study).sel(seed=0)
    slowest = epochs.where(epochs == epochs.max(), drop=True)
    assert f"(dfa taking the longest to fit it, {float(epochs.max()):g} epochs at depth " \
        f"{int(slowest.n_hidden.item())})" in page and slowest.rule.item() == "dfa"


def test_the_7_column_shape_decides_nothing_but_puts_fa_last_in_every_seed(page, studies):
    study = studies["nokland2016_table1_240"]
    count = verdicts.misclassified(study).sel(n_hidden=7).astype(int)
    to_bp = count - count.sel(rule="bp")
    fa_above = to_bp.sel(rule="fa").values.tolist()
    assert f"fa ends above bp in every seed (by {_and(fa_above)} test images)" in page and min(fa_above) > 0
    assert (count.sel(rule="fa") > count.sel(rule="dfa")).all()  # "and above dfa in every seed"
    dfa = to_bp.sel(rule="dfa").values.tolist()
    assert f"dfa's differences to bp are {_signed(dfa)} images" in page and min(dfa) < 0 < max(dfa)
    bp = 100 * (1 - analysis.final_value(study, "test_accuracy").sel(rule="bp", n_hidden=7))
    assert f"bp's own final errors spread from {float(bp.min()):.2f} to {float(bp.max()):.2f} %" in page
    reason = study.stop_reason.sel(n_hidden=7)
    assert (reason.sel(rule="fa") == "epoch_cap").all()
    assert (reason.sel(rule=["bp", "dfa"]) == "train_error_target").all()
    fa_train = 100 * (1 - analysis.final_value(study, "train_accuracy").sel(rule="fa", n_hidden=7))
    assert f"it reaches the epoch cap in all {study.seed.size} seeds, its running training error in the last " \
        f"epoch {_and([f'{v:.3f}' for v in fa_train.values])} %" in page and (fa_train > 0.01).all()
    v = verdicts.verdicts(study).sel(n_hidden=7)
    assert (v.verdict.sel(rule=["fa", "dfa"]) == "undetermined").all()
    lo, hi = (float(v[f"diff_{k}_pp"].sel(rule="fa")) for k in ("lo", "hi"))
    assert f"fa's interval reaches from {-lo:.2f} points below bp to {hi:.2f} above it, across the margin" in page
    assert lo < 0 and hi > 0.5
    assert "Seed 0 alone, with dfa 46 images below bp" in page and dfa[0] == -46
    # one seed at 800 units gives no interval, so no verdict; the neighbouring recipe's seed spread gives scale
    assert (verdicts.verdicts(studies["nokland2016_table1_800"]).verdict == "undetermined").all()
    nokland = 100 * (1 - analysis.final_value(open_quoted("nokland2016_dfa"), "test_accuracy"))
    assert f"spread over {float(nokland.max() - nokland.min()):.2f} points" in page


def test_the_delta_angles_through_the_7_column_stack_are_what_the_page_says(page, studies):
    study = studies["nokland2016_table1_240"]
    angle = analysis.final_value(study, "delta_alignment").sel(n_hidden=7, layer=list(range(1, 8)))
    fa, dfa = (angle.sel(rule=r).mean("seed").values for r in ("fa", "dfa"))
    assert f"fa's signal is {fa[-1]:.0f} degrees from backprop's in the top column and {fa[0]:.0f} degrees" \
        " in the lowest" in page
    assert (angle.sel(rule="fa").diff("layer") < 0).all(), "in every seed fa's angle grows at every column down"
    assert f"is {dfa[-1]:.0f} degrees off in the top column and no more than {dfa.max():.0f} in any" in page
    assert dfa[-1] > fa[-1] and dfa[0] < fa[0]  # worse than fa's at the top, better at the bottom
    count = verdicts.misclassified(study).sel(n_hidden=7)
    assert "dfa below fa in every seed" in page and (count.sel(rule="dfa") < count.sel(rule="fa")).all()


def test_the_chunks_waiting_for_the_other_depths_are_the_same_recipe_and_what_the_page_says(page, studies):
    from cortex_fa.training_time import hours_minutes, training_time

    study = studies["nokland2016_table1_800"]
    paths = sorted(PENDING.glob("study_*.nc"))
    chunks = [open_results(p) for p in paths]
    recipe = {k: v for k, v in json.loads(study.attrs["sweep"]).items() if k not in ("depths", "seeds")}
    cells = {}  # depth -> seeds run
    for chunk in chunks:
        assert {k: v for k, v in json.loads(chunk.attrs["sweep"]).items() if k not in ("depths", "seeds")} == recipe
        assert (chunk.status == "ok").all() and not set(chunk.seed.values.tolist()) & set(study.seed.values.tolist())
        for depth in chunk.n_hidden.values.tolist():
            cells.setdefault(depth, []).extend(chunk.seed.values.tolist())
    assert cells and set(cells) < set(study.n_hidden.values.tolist()), "a seed run at every depth joins the folder"
    with pytest.raises(ResultsError, match="do not tile"):  # why they wait
        combine_chunks(chunks + [open_results(p) for p in sorted(PENDING.parent.glob("study_*.nc"))])
    rows = training_time((p.name, c) for p, c in zip(paths, chunks))
    runs = sum(r["counted"] for r in rows)
    assert runs == 3 * sum(len(seeds) for seeds in cells.values())
    what = "; ".join(f"{d} x 800 seed{'s' if len(seeds) > 1 else ''} {_and(sorted(seeds))}"
                     for d, seeds in sorted(cells.items()))
    assert f"Of seeds 1 and 2 at 800 units, these have run: {what} ({runs} runs, " \
        f"{hours_minutes(sum(r['seconds'] for r in rows))} of training); they wait in " \
        "`docs/data/nokland2016_table1_800/pending/` for the other depths" in page


def test_with_seed_0_the_waiting_seeds_decide_what_the_page_says(page):
    """The pending seeds and seed 0 at the same depths tile a grid: three paired seeds give verdicts there."""
    parts = [open_results(p) for p in sorted(PENDING.glob("study_*.nc"))]
    depths = sorted({d for part in parts for d in part.n_hidden.values.tolist()})
    seed_0 = [open_results(PENDING.parent / f"study_d{d}_s0.nc") for d in depths]
    study = combine_chunks(parts + seed_0)
    v = verdicts.verdicts(study)
    assert (v.n == 3).all(), "three paired seeds at every depth"
    said = "; ".join(f"at depth {d} " + " and ".join(_verdict_text(v.sel(n_hidden=d), r) for r in ("fa", "dfa"))
                     for d in depths)
    assert f"decide at the 0.5-point margin: {said}." in page
    assert f"With {_and(['one', 'two', 'four'])} columns of 800 units" in page and depths == [1, 2, 4]
    assert (v.verdict.sel(rule=["fa", "dfa"]) == "keeps up").all()
    # at depth 4 both end below bp in every seed, their intervals wholly below zero
    count = verdicts.misclassified(study).sel(n_hidden=4)
    assert (count.sel(rule=["fa", "dfa"]) < count.sel(rule="bp")).all()
    assert (v.diff_hi_pp.sel(n_hidden=4, rule=["fa", "dfa"]) < 0).all()
    error = (100 * (1 - analysis.final_value(study, "test_accuracy"))).mean("seed")
    bp = error.sel(rule="bp").values
    assert f"There bp's mean error ({bp[2]:.2f} %) is higher than at depths 1 and 2 ({bp[0]:.2f} and " \
        f"{bp[1]:.2f} %)" in page and bp[2] > bp[:2].max()
    others = error.sel(rule=["fa", "dfa"])
    assert f"while fa's and dfa's stay between {float(others.min()):.2f} and {float(others.max()):.2f} % at all " \
        "three depths" in page
