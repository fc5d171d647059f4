"""Verdicts on counts: keeps up, falls behind, ahead, undetermined; breaking depth; the exact tie."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cortex_fa import verdicts as V


def study_of(errors: dict, depths=(1, 3, 5), dim="n_hidden"):
    """A study whose runs end with the given misclassified counts: ``{rule: [[count per seed] per depth]}``.

    Validation accuracy peaks at the last step, so the selected error is the last test error.
    """
    rules = list(errors)
    seeds = len(next(iter(errors.values()))[0])
    acc = np.zeros((len(rules), len(depths), seeds, 2))
    for i, rule in enumerate(rules):
        for j, per_seed in enumerate(errors[rule]):
            acc[i, j, :, 0] = 0.1
            acc[i, j, :, 1] = 1.0 - np.asarray(per_seed, float) / V.N_TEST
    val = np.broadcast_to(np.array([0.1, 0.9]), acc.shape).copy()
    dims = ("rule", dim, "seed", "step")
    return xr.Dataset({"test_accuracy": (dims, acc), "validation_accuracy": (dims, val),
                       "status": (dims[:3], np.full(acc.shape[:3], "ok"))},
                      coords={"rule": rules, dim: list(depths), "seed": list(range(seeds)), "step": [0, 100]})


def test_the_exact_tie_is_not_beyond_the_margin():
    """dfa 0.50 points behind bp in every seed: stored as 0.5000000000000004 pp, but 50 images is the margin."""
    bp = [[200, 210, 190]] * 3
    dfa = [[250, 260, 240]] * 3  # exactly +50 images in every seed
    v = V.verdicts(study_of({"bp": bp, "dfa": dfa}))
    assert (v.diff_mean.sel(rule="dfa") == 50).all() and (v.diff_lo.sel(rule="dfa") == 50).all()
    assert set(v.verdict.sel(rule="dfa").values) == {V.UNDETERMINED}
    assert V.breaking_depth(v).sel(rule="dfa").item() == V.UNDETERMINED
    # one more image in every seed and it falls behind
    v = V.verdicts(study_of({"bp": bp, "dfa": [[251, 261, 241]] * 3}))
    assert V.breaking_depth(v).sel(rule="dfa").item() == "1"


def test_keeps_up_needs_the_whole_interval_inside_the_margin():
    bp = [[200, 210, 190, 205]] * 3
    close = [[210, 215, 200, 212]] * 3  # +10, +5, +10, +7: tight, well inside 50
    wide = [[300, 150, 280, 160]] * 3  # mean near 0 but a wide interval: undetermined, not "keeps up"
    v = V.verdicts(study_of({"bp": bp, "close": close, "wide": wide}))
    assert set(v.verdict.sel(rule="close").values) == {V.KEEPS_UP}
    assert set(v.verdict.sel(rule="wide").values) == {V.UNDETERMINED}
    assert V.breaking_depth(v).sel(rule="close").item() == "none"


def test_breaking_depth_is_the_first_that_falls_behind_unless_an_earlier_one_is_undetermined():
    bp = [[200, 210, 190]] * 3
    fa = [[205, 212, 195], [240, 300, 350], [400, 420, 410]]  # keeps up, undetermined, behind
    kp = [[205, 212, 195], [208, 215, 193], [400, 420, 410]]  # keeps up, keeps up, behind
    v = V.verdicts(study_of({"bp": bp, "fa": fa, "kp": kp}))
    assert list(v.verdict.sel(rule="fa").values) == [V.KEEPS_UP, V.UNDETERMINED, V.FALLS_BEHIND]
    depth = V.breaking_depth(v)
    assert depth.sel(rule="fa").item() == V.UNDETERMINED and depth.sel(rule="kp").item() == "5"
    assert depth.sel(rule="bp").item() == "none"


def test_ahead_and_the_t_interval_against_scipy():
    from scipy import stats

    bp = [[400, 410, 420]] * 3
    better = [[300, 305, 312]] * 3
    v = V.verdicts(study_of({"bp": bp, "better": better}))
    assert set(v.verdict.sel(rule="better").values) == {V.AHEAD}
    d = np.array([-100, -105, -108])
    lo, hi = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
    assert float(v.diff_lo.sel(rule="better", n_hidden=1)) == pytest.approx(lo)
    assert float(v.diff_hi_pp.sel(rule="better", n_hidden=1)) == pytest.approx(hi / 100)
    assert V.verdict([10], 50) == V.UNDETERMINED and V.verdict([np.nan], 50) == V.NO_DATA


def test_a_missing_reference_is_refused():
    from cortex_fa.errors import ResultsError

    with pytest.raises(ResultsError, match="reference rule 'bp' is not in the study"):
        V.verdicts(study_of({"fa": [[1, 2]] * 3}))
