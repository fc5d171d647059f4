"""Verdicts on counts: keeps up, falls behind, ahead, undetermined; breaking depth; the exact tie."""

from __future__ import annotations

import numpy as np
import pytest
from factories import make_count_study as study_of

from cortex_fa import verdicts as V


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


def test_the_margin_in_whole_images_and_its_text():
    v = V.verdicts(study_of({"bp": [[200, 210, 190]] * 3, "fa": [[220, 230, 210]] * 3}), margin=0.123)
    assert v.attrs["margin_images"] == 12 and v.attrs["margin_pp"] == 0.12  # the points those 12 images make
    assert V.margin_text(v) == "12 images = 0.12 pp"


def exact_margin_study():
    """bp and dfa over two depths; dfa misclassifies exactly 50 more test images than bp in every seed."""
    from factories import make_study_dataset

    study = make_study_dataset(rules=("bp", "dfa"), depths=(1, 2), seeds=(0, 1, 2), epochs=2)
    bp = 1.0 - np.array([200, 210, 190]) / V.N_TEST
    last = study["test_accuracy"].copy()
    last.loc[dict(rule="bp", step=last.step[-1])] = bp[None, :]
    last.loc[dict(rule="dfa", step=last.step[-1])] = bp[None, :] - 0.005  # stored as 0.5000000000000004 pp more
    return study.assign(test_accuracy=last)


def test_report_on_a_gap_exactly_at_the_margin_says_undetermined(tmp_path, capsys):
    from cortex_fa import analysis
    from cortex_fa.cli import main
    from cortex_fa.results import save_results

    study = exact_margin_study()
    assert float(analysis.breaking_depth(study).sel(rule="dfa")) == 1  # the old float rule: a tie decides it
    save_results(study, tmp_path / "tie.nc")
    assert main(["report", str(tmp_path / "tie.nc")]) == 0
    out = capsys.readouterr().out
    title = ("Verdicts vs bp on the final test error (at the last logged epoch), margin 50 images = 0.5 pp: "
             "rule minus bp in misclassified test images (of 10,000) and in points")
    assert title in out
    rows = [line.split() for line in out.split(title)[1].split("\n\n")[0].splitlines()[2:]]
    assert [r[:2] + r[-2:] for r in rows] == [["dfa", "1", "3", "undetermined"], ["dfa", "2", "3", "undetermined"]]
    assert "+50.0 [+50.0, +50.0]" in out and "+0.50 [+0.50, +0.50]" in out
    assert "Breaking depth vs bp on the final test error (at the last logged epoch), margin 50 images = 0.5 pp" in out
    assert out.split("Breaking depth vs bp")[1].split("\n\n")[0].splitlines()[-1].split() == ["dfa", "undetermined"]
    md = (tmp_path / "tie.report.md").read_text()
    assert "### Verdicts vs bp on the final test error" in md and "| dfa | undetermined |" in md
    assert (tmp_path / "tie.breaking_depth.csv").read_text().splitlines()[1] == "dfa,undetermined,bp,final,50,0.5"
    assert (tmp_path / "tie.verdicts.csv").read_text().splitlines()[1].startswith("dfa,1,50.0,50.0,50.0,0.5,0.5,0.5,3,undetermined,")


def test_report_margin_and_reference_flags_reach_the_verdicts(tmp_path, capsys):
    from cortex_fa.cli import main
    from cortex_fa.results import save_results

    save_results(exact_margin_study(), tmp_path / "tie.nc")
    assert main(["report", str(tmp_path / "tie.nc"), "--margin", "0.4", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "margin 40 images = 0.4 pp" in out
    assert out.split("Breaking depth vs bp")[1].split("\n\n")[0].splitlines()[-1].split() == ["dfa", "1"]
    assert main(["report", str(tmp_path / "tie.nc"), "--margin", "0.4", "--reference", "dfa", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "Verdicts vs dfa" in out and "images (rule - dfa)" in out
    assert "-50.0 [-50.0, -50.0]" in out and " ahead" in out
    assert out.split("Breaking depth vs dfa")[1].split("\n\n")[0].splitlines()[-1].split() == ["bp", "none"]
    assert not list(tmp_path.glob("*.csv"))  # --no-write


def test_report_without_the_reference_has_no_verdict_tables():
    from factories import make_study_dataset

    from cortex_fa.cli.report import build_tables

    names = [t.name for t in build_tables(make_study_dataset(rules=("fa", "dfa"), depths=(1, 2), seeds=(0, 1)))]
    assert "verdicts" not in names and "breaking_depth" not in names
    names = [t.name for t in build_tables(make_study_dataset(rules=("bp", "fa"), depths=(1, 2), seeds=(0, 1)))]
    assert names.index("verdicts") + 1 == names.index("breaking_depth")
