"""A reproduction is an equivalence test on the interval of (measured - published)."""

from __future__ import annotations

import pytest

from cortex_fa import presets, reproduction
from cortex_fa.errors import ConfigError

NAN = float("nan")


@pytest.mark.parametrize("published,lo,hi,margin,expected", [
    (2.0, 1.8, 2.2, 0.3, "reproduced"),         # the whole difference inside +-0.3
    (2.1, 1.8, 2.4, 0.3, "reproduced"),         # 1.8 - 2.1 is -0.30000000000000004: equal to the margin, inside
    (2.0, 2.35, 2.5, 0.3, "not reproduced"),    # wholly above the margin
    (2.0, 1.5, 1.69, 0.3, "not reproduced"),    # wholly below it
    (2.0, 2.2, 2.4, 0.3, "undetermined"),       # straddles +0.3
    (2.0, 1.0, 3.0, 0.3, "undetermined"),       # a wide interval that covers the published value is not enough
    (2.0, 1.6, 2.4, 0.5, "reproduced"),         # the paper's own spread as the margin
    (2.0, NAN, NAN, 0.3, "undetermined"),       # one seed: no interval, no verdict
])
def test_verdict(published, lo, hi, margin, expected):
    assert reproduction.verdict(published, lo, hi, margin) == expected


def test_a_margin_must_be_positive():
    with pytest.raises(ValueError, match="margin must be > 0"):
        reproduction.verdict(2.0, 1.9, 2.1, 0.0)


def test_a_peer_measurement_is_matched_and_never_counted():
    assert reproduction.label("reproduced", reproduction.PEER) == "matches peer"
    assert reproduction.label("not reproduced", reproduction.PEER) == "differs from peer"
    assert reproduction.label("reproduced") == "reproduced"
    rows = [{"kind": "publication", "verdict": "reproduced", "n": 3},
            {"kind": "publication", "verdict": "undetermined", "n": 3},
            {"kind": "publication", "verdict": "undetermined", "n": 0},  # not run: not compared
            {"kind": "peer measurement", "verdict": "reproduced", "n": 3}]
    assert reproduction.count_reproduced(rows) == (1, 2)


def test_the_sign_symmetry_reference_is_labelled_a_peer_measurement():
    assert presets.load("sign_symmetry").published["kind"] == reproduction.PEER
    for name in ("lillicrap2016", "bartunov2018_fc", "nokland2016_dfa"):
        assert presets.load(name).published.get("kind", reproduction.PUBLICATION) == reproduction.PUBLICATION


@pytest.mark.parametrize("published,message", [
    ('kind = "blog"', "published.kind must be one of 'publication', 'peer measurement'"),
    ("spread = {fa = -0.1}", "published.spread must be a table of rule = percentage points > 0"),
    ('spread = {fa = "wide"}', "published.spread must be a table"),
])
def test_a_bad_published_table_is_a_one_line_error(tmp_path, published, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'[sweep]\nrules = ["fa"]\n[published]\n{published}\n[published.test_error]\nfa = 2.0\n')
    with pytest.raises(ConfigError, match=message) as info:
        presets.load(str(path))
    assert "\n" not in str(info.value)


def test_a_published_spread_becomes_the_margin(tmp_path):
    import numpy as np
    import xarray as xr

    path = tmp_path / "spread.toml"
    path.write_text('[sweep]\nrules = ["fa"]\n[published]\nmetric = "final"\ndepth = 1\n'
                    '[published.test_error]\nfa = 2.0\n[published.spread]\nfa = 0.6\n')
    acc = np.array([[0.1, 0.979], [0.1, 0.981], [0.1, 0.980]])  # seeds x steps: errors 2.1, 1.9, 2.0
    study = xr.Dataset({"test_accuracy": (("rule", "n_hidden", "seed", "step"), acc[None, None]),
                        "status": (("rule", "n_hidden", "seed"), np.full((1, 1, 3), "ok"))},
                       coords={"rule": ["fa"], "n_hidden": [1], "seed": [0, 1, 2], "step": [0, 10]})
    (row,) = presets.load(str(path)).compare(study)
    # mean 2.0, interval +-2.48 * 0.0577 = +-0.25: inside the paper's 0.6, and inside 0.3 as well
    assert row["margin"] == 0.6 and row["verdict"] == "reproduced" and row["reproduced"]
    path.write_text(path.read_text().replace("fa = 0.6", "fa = 0.2"))
    (row,) = presets.load(str(path)).compare(study)
    assert row["margin"] == 0.2 and row["verdict"] == "undetermined"


def test_reproduce_prints_the_margin_and_the_verdict_of_each_committed_preset():
    from pathlib import Path

    from cortex_fa.cli.reproduce import comparison_table
    from cortex_fa.results import open_results

    data = Path(__file__).resolve().parent.parent / "docs" / "data"
    peer = comparison_table(presets.load("sign_symmetry"), open_results(data / "sign_symmetry.nc"))
    lines = {line.split()[0]: line for line in peer.splitlines()[1:]}
    assert "peer measurement (other software), not a publication" in peer
    assert lines["bp"].endswith("0.30  differs from peer") and lines["usf"].endswith("0.30  undetermined")
    paper = comparison_table(presets.load("lillicrap2016"), open_results(data / "lillicrap2016.nc"))
    assert "peer" not in paper and all(line.endswith("0.30  not reproduced")
                                       for line in paper.splitlines() if line.split()[0] in ("bp", "fa", "shallow"))


def test_reproduce_on_a_preset_without_published_numbers_says_so_instead_of_an_empty_table():
    from cortex_fa.cli.reproduce import comparison_table
    from factories import make_study_dataset

    text = comparison_table(presets.load("depth7_schedule"), make_study_dataset(rules=("bp", "fa"), depths=(7,), seeds=(0,)))
    assert text.splitlines()[1] == "no published numbers: preset depth7_schedule is a study, not a reproduction"
    assert "?" not in text


def test_reproduce_compare_reads_a_study_made_in_seed_chunks_and_runs_nothing(tmp_path, capsys):
    """The committed nokland2016_dfa chunks, combined as the docs say, compared without training anything."""
    import sys
    from pathlib import Path

    from cortex_fa.cli import main

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_study_files import comparison_cells

    data = Path(__file__).resolve().parent.parent / "docs" / "data" / "nokland2016_dfa"
    combined = tmp_path / "nokland2016_dfa.nc"
    assert main(["protocol", "combine", *map(str, sorted(data.glob("study_s*.nc"))), "--out", str(combined)]) == 0
    capsys.readouterr()
    assert main(["reproduce", "nokland2016_dfa", "--compare", str(combined)]) == 0
    row = next(line.split() for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["dfa"])
    cells = comparison_cells("nokland2016_dfa", "dfa")
    assert row[1] == cells["published"] and " ".join(row[2:5]) == cells["measured"]
    assert row[6] == cells["shortfall"] and " ".join(row[8:]) == cells["verdict"]
    assert int(row[5]) == len(list(data.glob("study_s*.nc")))  # seeds: one per chunk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nokland2016_dfa.nc"]  # nothing was run or written
