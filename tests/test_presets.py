"""Reference presets: every file loads and validates; unknown names fail helpfully."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from cortex_fa import presets
from cortex_fa.cli import main
from cortex_fa.errors import ConfigError

EXPECTED = {"lillicrap2016", "lillicrap2016_tuned", "bartunov2018_fc", "nokland2016_dfa", "nokland2016_dfa_adam", "sign_symmetry", "depth_study"}


def test_all_reference_presets_are_there():
    assert EXPECTED <= set(presets.available())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_loads_validates_and_cites_its_source(name):
    p = presets.load(name)
    full, quick = p.spec().configs(), p.spec(quick=True).configs()
    assert full and quick
    assert sum(c.epochs * (c.train_subset or 60000) for c in quick) < sum(c.epochs * (c.train_subset or 60000) for c in full)
    assert p.published["source"] and p.published["metric"] in ("selected", "final")
    assert p.published_errors and all(0 < v < 100 for v in p.published_errors.values())
    assert set(p.published_errors) <= set(p.spec().rules) and int(p.published["depth"]) in p.spec().depths
    assert p.path.read_text().lstrip().startswith("#")  # documented


def test_published_numbers_are_the_referenced_ones():
    assert presets.load("lillicrap2016").published_errors == {"bp": 2.4, "fa": 2.1, "shallow": 7.2}
    assert presets.load("bartunov2018_fc").published_errors == {"bp": 1.48, "fa": 1.85, "dfa": 2.75}
    assert presets.load("nokland2016_dfa").published_errors == {"dfa": 1.45}
    assert presets.load("nokland2016_dfa_adam").published_errors == {"dfa": 1.45}
    lil = presets.load("lillicrap2016").spec().configs()[0]
    assert (lil.hidden, lil.activation, lil.output_activation, lil.loss) == ((1000,), "sigmoid", "sigmoid", "mse")
    nok = presets.load("nokland2016_dfa").spec().configs()[0]
    assert nok.init == "zero" and nok.hidden == (800, 800)
    assert (nok.optimizer, nok.loss, nok.loss_reduction) == ("rmsprop", "bce", "sum")  # the author's code


def test_depth_study_quick_overrides():
    p = presets.load("depth_study")
    quick = p.spec(quick=True)
    assert quick.depths == (1, 2, 3, 5, 7) and quick.rules == ("bp", "fa", "usf", "dfa", "ifa", "kp")
    assert len(quick.seeds) >= 3  # the breaking depth needs a seed interval
    assert quick.base["train_subset"] == 20000 and p.spec().base.get("train_subset") is None
    # each rule at its own learning rate, in both variants; kp with its decay
    for spec in (quick, p.spec()):
        lrs = {c.rule: c.lr for c in spec.configs()}
        assert lrs == {"bp": 0.1, "fa": 0.3, "usf": 0.3, "dfa": 0.3, "ifa": 0.3, "kp": 0.1}
        assert all(c.rule_params == ({"decay": 0.001} if c.rule == "kp" else {}) for c in spec.configs())
        assert all(c.validation == 10000 for c in spec.configs())
    assert {c.patience for c in p.spec().configs()} == {8} and {c.epochs for c in p.spec().configs()} == {100}


def test_unknown_preset_lists_the_valid_names(capsys):
    with pytest.raises(ConfigError, match="unknown preset 'depth_studdy' \\(did you mean 'depth_study'\\?\\)"):
        presets.load("depth_studdy")
    assert main(["reproduce", "nonesuch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(name in err[0] for name in EXPECTED)


def test_reproduce_without_name_lists_presets(capsys):
    assert main(["reproduce"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in EXPECTED)


def test_bad_preset_file_is_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[sweep]\nrules = ["bp"]\n[run]\nlr = -1\n')
    with pytest.raises(ConfigError, match="preset bad.toml: sweep cell rule=bp depth=1: lr must be > 0"):
        presets.load(str(bad))
    bad.write_text('[sweep]\nrules = ["bp"]\n[quick]\nepochs = 0\n')
    with pytest.raises(ConfigError, match=r"bad.toml \[quick\].*epochs must be >= 1"):
        presets.load(str(bad))
    bad.write_text('[sweep]\nrules = ["bp"]\n[publshed]\n')
    with pytest.raises(ConfigError, match="unknown table"):
        presets.load(str(bad))


def test_compare_reports_shortfall_in_percentage_points():
    p = presets.load("lillicrap2016")
    acc = np.array([[[0.1, 0.975, 0.99], [0.1, 0.977, 0.99]], [[0.1, 0.978, 0.99], [0.1, 0.980, 0.99]]])  # rule, seed, step
    val = np.array([[[np.nan, 0.96, 0.95]] * 2] * 2)  # best validation at step 10: the last step is not selected
    study = xr.Dataset(
        {"test_accuracy": (("rule", "n_hidden", "seed", "step"), acc[:, None]),
         "validation_accuracy": (("rule", "n_hidden", "seed", "step"), val[:, None]),
         "status": (("rule", "n_hidden", "seed"), np.full((2, 1, 2), "ok"))},
        coords={"rule": ["bp", "fa"], "n_hidden": [1], "seed": [0, 1], "step": [0, 10, 20]},
    )
    assert p.published["metric"] == "selected"
    rows = {r["rule"]: r for r in p.compare(study)}
    assert rows["bp"]["mean"] == pytest.approx(2.4) and rows["bp"]["shortfall"] == pytest.approx(0.0, abs=1e-9)
    assert rows["fa"]["mean"] == pytest.approx(2.1) and rows["fa"]["n"] == 2
    assert rows["shallow"]["n"] == 0 and math.isnan(rows["shallow"]["shortfall"])
    # two seeds: a t-interval of +-1.27 points around each mean, far wider than the 0.3-point margin. A mean
    # that equals the published value is not a reproduction: the verdict is undetermined
    assert rows["bp"]["margin"] == 0.3 and rows["bp"]["lo"] == pytest.approx(2.4 - 12.706 * 0.1, abs=1e-3)
    assert [rows[r]["verdict"] for r in ("bp", "fa", "shallow")] == ["undetermined"] * 3
    assert not any(r["reproduced"] for r in rows.values()) and rows["bp"]["kind"] == "publication"


def test_depth7_schedule_ablation_waits_twice_the_protocols_patience():
    """The ablation's runs hold the protocol's patience (replayed by cortex_fa.stopping) and twice as long."""
    protocol = {(c.patience, c.lr_patience, c.lr_decay) for c in presets.load("depth_protocol").spec().configs()}
    (patience, lr_patience, lr_decay), = protocol
    configs = presets.load("depth7_schedule").spec().configs()
    assert {c.patience for c in configs} == {2 * patience}
    assert {(c.lr_patience, c.lr_decay) for c in configs} == {(lr_patience, lr_decay)}
    assert {c.lr_schedule for c in configs} == {"constant", "plateau"}
    assert {c.hidden for c in configs} == {(240,) * 7} and {c.seed for c in configs} == {0, 1, 2}
    assert {(c.rule, c.lr) for c in configs} == {("bp", 0.1), ("fa", 0.3), ("ifa", 0.3)}  # the converged study's
    quick = presets.load("depth7_schedule").spec(quick=True).configs()
    assert all(c.train_subset == 3000 and c.patience < c.epochs for c in quick)


def test_lillicrap_scale_ablation_brackets_the_glorot_bounds_it_replaces():
    """Stage 1 grids the bounds w and b themselves (init "fixed") around what lillicrap2016 uses (Glorot)."""
    import numpy as np

    base = presets.load("lillicrap2016").spec().configs()
    configs = presets.load("lillicrap2016_scales").spec().configs()
    assert {c.rule for c in configs} == {"fa"} and len(configs) == 21
    assert {(c.init, c.feedback_init) for c in configs} == {("fixed", "fixed")}
    glorot_w, glorot_b = np.sqrt(6 / (784 + 1000)), np.sqrt(6 / (1000 + 10))
    ws, bs = sorted({c.init_scale for c in configs}), sorted({c.feedback_scale for c in configs})
    assert ws[0] < glorot_w < ws[-1] and bs[0] < glorot_b < bs[-1]
    same = ("activation", "output_activation", "loss", "optimizer", "lr", "weight_decay", "batch_size", "hidden")
    recipe = {tuple(getattr(c, k) for k in same) for c in base if c.rule == "fa"}
    assert {tuple(getattr(c, k) for k in same) for c in configs} == recipe
