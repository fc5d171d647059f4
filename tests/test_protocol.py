"""The declared protocol: plateau schedule, rule variants, per-cell options, rate choice, chunks, CLI.

References: hand-computed schedules and choices on synthetic studies (the
tie and ineligible cases among them), an unbroken run (a plateau run stopped
and restored ends where it would have), and the committed converged study
(split by depth and combined again, it is unchanged).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from cortex_fa import ConfigError, ResultsError, RunConfig, Simulation
from cortex_fa.schedule import plateau_drops

# -- the plateau schedule -------------------------------------------------------------


@pytest.mark.parametrize("history, patience, drops", [
    ([], 2, 0),
    ([0.5, 0.6, 0.7], 1, 0),                       # always improving
    ([0.5, 0.5], 1, 1),                            # a tie is no improvement
    ([0.5, 0.4, 0.4, 0.4, 0.4], 2, 2),             # a long plateau cuts every `patience` epochs
    ([0.5, 0.4, 0.6, 0.5, 0.5], 2, 1),             # an improvement restarts the count
    ([0.5, float("nan"), float("nan")], 2, 1),     # NaN never improves
    ([0.5, 0.4, 0.4, 0.9, 0.8], 3, 0),
])
def test_plateau_drops_by_hand(history, patience, drops):
    assert plateau_drops(history, patience) == drops


def test_plateau_needs_a_validation_split_and_a_positive_patience():
    with pytest.raises(ConfigError, match="plateau.*validation"):
        RunConfig(lr_schedule="plateau")
    with pytest.raises(ConfigError, match="lr_patience"):
        RunConfig(lr_schedule="plateau", validation=100, lr_patience=0)
    with pytest.raises(ConfigError, match="lr_patience"):
        plateau_drops([0.1], 0)


def test_new_options_at_their_defaults_keep_every_hash():
    cfg = RunConfig(rule="fa", hidden=(8,))
    assert cfg.hash() == cfg.replace(lr_patience=3, label="").hash()
    assert cfg.hash() != cfg.replace(label="fa_x").hash()  # a label is part of the identity
    assert cfg.replace(validation=10, lr_schedule="plateau").hash() != cfg.replace(
        validation=10, lr_schedule="plateau", lr_patience=2).hash()


def test_plateau_cuts_the_rate_when_validation_stalls(tiny_data):
    cfg = RunConfig(rule="fa", hidden=(16,), epochs=12, batch_size=100, lr=0.5, validation=200,
                    lr_schedule="plateau", lr_patience=1, lr_decay=0.5)
    sim = Simulation(cfg, data=tiny_data, progress=False).run()
    drops = plateau_drops(sim.validation_history, 1)
    assert drops >= 1 and sim.lr_drops == drops
    # the rate of an epoch follows the history before it
    from cortex_fa import optim
    assert optim.learning_rate(cfg, 0, 0, 1, drops) == pytest.approx(0.5 * 0.5**drops)


def test_plateau_run_interrupted_and_resumed_equals_an_unbroken_run(tiny_data, tmp_path):
    from test_simulation import same_run, same_weights

    cfg = RunConfig(rule="fa", hidden=(16,), epochs=10, batch_size=100, lr=0.5, validation=200,
                    lr_schedule="plateau", lr_patience=1, lr_decay=0.5, patience=4)
    whole = Simulation(cfg, data=tiny_data, progress=False).run()
    assert whole.lr_drops >= 1
    for stop_after in (2, whole.epoch - 1):
        part = Simulation(cfg, data=tiny_data, progress=False).run(epochs=stop_after)
        again = Simulation.restore(part.store(tmp_path / f"p{stop_after}.nc"), data=tiny_data, progress=False).run()
        same_run(whole.results, again.results)
        same_weights(whole, again)


# -- rule variants and per-cell options --------------------------------------------


def _spec(**kw):
    from cortex_fa.spec import SweepSpec

    table = {"rules": ["bp", "bp_wd", "fa"], "depths": [1, 2], "seeds": [0], "width": 8,
             "per_rule": {"bp_wd": {"rule": "bp", "weight_decay": 1e-3}}, **kw}
    return SweepSpec.from_table(table, {"epochs": 1, "train_subset": 200, "probe_size": 32, "batch_size": 50})


def test_a_variant_is_its_rule_with_a_label_and_its_own_options():
    spec = _spec(per_cell={"fa@2": {"lr": 0.3}, "bp_wd@1": {"lr": 0.2}})
    by = {(c.study_label, c.depth): c for c in spec.configs()}
    assert by[("bp_wd", 1)].rule == "bp" and by[("bp_wd", 1)].label == "bp_wd"
    assert by[("bp_wd", 1)].weight_decay == 1e-3 and by[("bp_wd", 1)].lr == 0.2
    assert by[("bp", 1)].label == "" and by[("bp", 1)].weight_decay == 0.0
    assert by[("fa", 2)].lr == 0.3 and by[("fa", 1)].lr == RunConfig().lr
    assert spec.to_dict()["per_cell"] == {"fa@2": {"lr": 0.3}, "bp_wd@1": {"lr": 0.2}}


@pytest.mark.parametrize("kw, message", [
    ({"per_rule": {"bpx": {"lr": 0.1}}}, "unknown rule 'bpx'"),
    ({"per_rule": {"fa": {"rule": "bp"}}}, "fa is a rule itself"),
    ({"per_rule": {"v": {"rule": "nope"}}}, "rule 'nope' is not known"),
    ({"per_rule": {"fa": {"label": "x"}}}, "'label' is not a run option that can be set per rule"),
    ({"per_cell": {"fa3": {"lr": 0.1}}}, "RULE@DEPTH"),
    ({"per_cell": {"zz@3": {"lr": 0.1}}}, "neither a rule nor a variant"),
    ({"per_cell": {"fa@1": {"lr": 0.1}}, "grid": {"lr": [0.1, 0.2]}}, "also swept by the grid"),
    ({"per_cell": {"fa@1": {"lr": -1.0}}}, "lr must be > 0"),
])
def test_bad_variants_and_cells_are_one_line_errors(kw, message):
    table = {"rules": ["fa"], "width": 8, **kw}
    from cortex_fa.spec import SweepSpec

    with pytest.raises(ConfigError, match=message) as info:
        SweepSpec.from_table(table, {"epochs": 1})
    assert "\n" not in str(info.value)


def test_labels_are_checked():
    with pytest.raises(ConfigError, match="label"):
        RunConfig(rule="bp", label="bp wd")
    with pytest.raises(ConfigError, match="another rule"):
        RunConfig(rule="bp", label="fa")
    assert RunConfig(rule="bp", label="bp_wd").study_label == "bp_wd"
    assert RunConfig(rule="bp").study_label == "bp"


@pytest.fixture(scope="module")
def variant_runs(tiny_data):
    from cortex_fa.training import train

    spec = _spec(per_cell={"fa@2": {"lr": 0.3}, "bp@1": {"lr": 0.2}}, seeds=[0, 1])
    return spec, [train(c, tiny_data, progress=False) for c in spec.configs()]


def test_variants_are_rules_of_the_study_and_per_cell_options_no_dims(variant_runs):
    from cortex_fa.study import combine_runs

    spec, runs = variant_runs
    study = combine_runs(runs, sweep=spec.to_dict(), coords=spec.coords())
    assert list(study["rule"].values) == ["bp", "bp_wd", "fa"]
    assert set(study["status"].dims) == {"rule", "n_hidden", "seed"}  # lr is per cell, weight_decay per rule
    cfg = json.loads(str(study["config"].sel(rule="bp_wd", n_hidden=1, seed=0).values))
    assert cfg["rule"] == "bp" and cfg["label"] == "bp_wd" and cfg["weight_decay"] == 1e-3
    assert json.loads(str(study["config"].sel(rule="fa", n_hidden=2, seed=1).values))["lr"] == 0.3


def test_chunks_of_real_runs_combine_into_the_study_of_all_runs(variant_runs, tmp_path):
    from cortex_fa.chunks import combine_chunks
    from cortex_fa.results import open_results, save_results
    from cortex_fa.study import combine_runs

    spec, runs = variant_runs
    whole = combine_runs(runs, sweep=spec.to_dict(), coords=spec.coords())
    parts = [combine_runs([r for r in runs if json.loads(r.attrs["config"])["hidden"] == [8] * d],
                          sweep=spec.to_dict(), coords={**spec.coords(), "n_hidden": [d]}) for d in (2, 1)]
    assert parts[1].sizes["layer"] < parts[0].sizes["layer"]  # a shallower chunk has fewer layers
    both = combine_chunks(parts)
    xr.testing.assert_identical(whole.drop_attrs(), both.drop_attrs())
    assert both.attrs["n_runs"] == whole.attrs["n_runs"]
    # through files: each chunk's text width is its own (a wider config must not be cut to the first's)
    files = [save_results(p, tmp_path / f"chunk{i}.nc") for i, p in enumerate(parts)]
    again = combine_chunks([open_results(f) for f in files])
    save_results(again, tmp_path / "all.nc")
    back = open_results(tmp_path / "all.nc")
    assert back["config"].values.tolist() == whole["config"].values.tolist()


def test_the_converged_study_split_by_depth_combines_back_unchanged():
    from pathlib import Path

    from cortex_fa.chunks import combine_chunks, split_by_depth
    from cortex_fa.results import open_results

    study = open_results(Path(__file__).resolve().parents[1] / "docs/data/depth_study_converged.nc")
    again = combine_chunks(split_by_depth(study)[::-1])
    xr.testing.assert_identical(study, again)
    assert study.attrs == again.attrs


def test_a_study_split_by_seed_combines_back_unchanged():
    from pathlib import Path

    from cortex_fa.chunks import combine_chunks
    from cortex_fa.results import open_results

    study = open_results(Path(__file__).resolve().parents[1] / "docs/data/depth_study_converged.nc")
    parts = []
    for seeds in ([2], [0, 1]):  # out of order: the combined study is sorted by seed
        part = study.sel(seed=seeds)
        part.attrs = {**study.attrs, "n_runs": int((part["status"] != "missing").sum())}
        parts.append(part)
    again = combine_chunks(parts)
    xr.testing.assert_identical(study, again)
    assert study.attrs == again.attrs


def test_a_study_run_a_depth_and_a_seed_at_a_time_combines_back_unchanged():
    """Chunks that tile depth x seed (and blocks of several rules beside one rule each) join into the study."""
    from pathlib import Path

    from cortex_fa.chunks import chunk_plan, combine_chunks
    from cortex_fa.results import open_results

    study = open_results(Path(__file__).resolve().parents[1] / "docs/data/depth_study_converged.nc")
    depths, seeds, rules = (study[d].values.tolist() for d in ("n_hidden", "seed", "rule"))

    def chunk(**at):
        part = study.sel(at)
        part.attrs = {**study.attrs, "n_runs": int((part["status"] != "missing").sum())}
        return part

    cells = [chunk(n_hidden=[d], seed=[s]) for s in seeds[::-1] for d in depths[::-1]]  # out of order
    assert set(chunk_plan(cells)[1]) == {"n_hidden", "seed"}
    again = combine_chunks(cells)
    xr.testing.assert_identical(study, again)
    assert study.attrs == again.attrs
    # the deepest depth run a rule at a time, beside the other depths run whole
    parts = [chunk(n_hidden=depths[:-1])] + [chunk(n_hidden=depths[-1:], rule=[r]) for r in rules]
    xr.testing.assert_identical(study, combine_chunks(parts))
    with pytest.raises(ResultsError, match="differ in n_hidden and seed and do not tile a grid"):  # a cell is missing
        combine_chunks(cells[1:])
    with pytest.raises(ResultsError, match="the chunks differ in data_sha256"):  # another study's cell, named as such
        combine_chunks(cells[:-1] + [cells[-1].assign_attrs(data_sha256="other")])


def test_a_grid_study_split_by_grid_value_combines_back_unchanged():
    """A grid extended later (``--grid lr=...`` with new values) joins along the swept option, sorted."""
    from pathlib import Path

    from cortex_fa.chunks import chunk_plan, combine_chunks
    from cortex_fa.results import open_results

    study = open_results(Path(__file__).resolve().parents[1] / "docs/data/lr_grid_240.nc")
    rates = study["lr"].values.tolist()
    parts = []
    for lrs in (rates[1::2], rates[0::2]):  # interleaved and out of order
        part = study.sel(lr=lrs)
        part.attrs = {**study.attrs, "n_runs": int((part["status"] != "missing").sum())}
        parts.append(part)
    assert chunk_plan(parts)[1] == ["lr"]
    again = combine_chunks(parts)
    xr.testing.assert_identical(study, again)
    assert again.attrs["n_runs"] == study.attrs["n_runs"]
    # a chunk that swept one rate has no lr dim (as a sweep writes it): its runs' configs say which
    rest, single = study.sel(lr=rates[:-1]), study.sel(lr=rates[-1], drop=True)
    for part in (rest, single):
        part.attrs = {**study.attrs, "n_runs": int((part["status"] != "missing").sum())}
    assert "lr" not in single.dims and "lr" not in single.coords
    xr.testing.assert_identical(study, combine_chunks([rest, single]))
    # two chunks that each fixed one rate (--grid lr=A today, --grid lr=B tomorrow)
    one, other = (study.sel(lr=[r]).squeeze("lr", drop=True) for r in rates[:2])
    for part in (one, other):
        part.attrs = {**study.attrs, "n_runs": int((part["status"] != "missing").sum())}
    got, want = combine_chunks([other, one]), study.sel(lr=rates[:2]).copy()
    assert got.attrs["n_runs"] == int((want["status"] != "missing").sum())
    got.attrs, want.attrs = {}, {}  # the study-level attrs (a sweep's grid) are the parts', joined
    xr.testing.assert_identical(want, got)
    depths = study["n_hidden"].values.tolist()
    with pytest.raises(ResultsError, match="the chunks differ in n_hidden and lr and do not tile"):  # refused, not guessed
        combine_chunks([study.sel(lr=rates[:2], n_hidden=depths[:1]), study.sel(lr=rates[2:], n_hidden=depths[1:])])


def _timed(hashes, seconds, status=None):
    """A study of runs over (rule, seed) with the given hashes and final training seconds."""
    hashes, seconds = np.array(hashes, dtype=object), np.array(seconds, dtype=float)
    wall = np.full(hashes.shape + (3,), np.nan)
    wall[..., 0], wall[..., 1] = seconds / 2, seconds  # the last finite step is the run's time
    status = np.full(hashes.shape, "ok", dtype=object) if status is None else np.array(status, dtype=object)
    return xr.Dataset({"config_hash": (("rule", "seed"), hashes), "status": (("rule", "seed"), status),
                       "wall_time": (("rule", "seed", "step"), wall)}, coords={"n_hidden": 2})


def test_training_time_counts_a_run_shared_by_two_chunks_once():
    from cortex_fa.training_time import hours_minutes, training_time

    selection = _timed([["a", "b"], ["c", "d"]], [[10, 20], [30, 40]])
    study = _timed([["a", "x"], ["c", "y"]], [[10, 100], [30, 1000]], status=[["ok", "ok"], ["ok", "missing"]])
    rows = training_time([("sel", selection), ("study", study)])
    assert [(r["runs"], r["counted"], r["seconds"]) for r in rows] == [(4, 4, 100.0), (3, 1, 100.0)]
    assert rows[1]["depths"] == [2]
    # counted in the order given: the study first takes the shared runs
    rows = training_time([("study", study), ("sel", selection)])
    assert [(r["counted"], r["seconds"]) for r in rows] == [(3, 140.0), (2, 60.0)]
    assert (hours_minutes(59 * 60 + 29), hours_minutes(3600 * 5 + 7 * 60)) == ("59 min", "5 h 07 min")
    with pytest.raises(ResultsError, match="no 'config_hash'"):
        training_time([("x", study.drop_vars("config_hash"))])


def test_chunks_that_are_not_one_study_are_refused(variant_runs):
    from cortex_fa.chunks import combine_chunks
    from cortex_fa.study import combine_runs

    spec, runs = variant_runs
    study = combine_runs(runs, coords=spec.coords())
    with pytest.raises(ResultsError, match="overlap"):
        combine_chunks([study, study])
    other = study.sel(n_hidden=[2]).assign_attrs(data_sha256="other")
    with pytest.raises(ResultsError, match="data_sha256"):
        combine_chunks([study.sel(n_hidden=[1]), other])
    with pytest.raises(ResultsError, match="the chunks differ in n_hidden and seed and do not tile a grid"):
        combine_chunks([study.sel(n_hidden=[1]), study.sel(n_hidden=[2], seed=[0])])


# -- choosing the rates -----------------------------------------------------------------

RATES = [0.03, 0.1, 0.3, 1.0]


def selection_study(best, *, status=None, reason=None, validation=1000):
    """A selection study (rule x n_hidden x seed x lr) whose best validation accuracies are ``best``."""
    best = np.asarray(best, dtype=float)  # (rule, depth, seed, lr)
    shape = best.shape
    acc = np.stack([best * 0.5, best, best * 0.9], axis=-1)  # the best epoch in the middle
    config = json.dumps({"validation": validation})
    dims = ("rule", "n_hidden", "seed", "lr")
    return xr.Dataset({
        "validation_accuracy": ((*dims, "step"), acc),
        "status": (dims, np.full(shape, "ok") if status is None else np.asarray(status)),
        "stop_reason": (dims, np.full(shape, "early_stop") if reason is None else np.asarray(reason)),
        "config": (dims, np.full(shape, config)),
    }, coords={"rule": ["bp", "fa"][:shape[0]], "n_hidden": [1, 7][:shape[1]], "seed": [0, 1][:shape[2]],
               "lr": RATES[:shape[3]], "step": [0, 1, 2]})


def test_choose_rates_takes_the_best_mean_validation_score():
    from cortex_fa.protocol import choose_rates

    best = np.array([[[[0.90, 0.95, 0.97, 0.96], [0.91, 0.95, 0.96, 0.98]]]])  # seed means: .905 .95 .965 .97
    choice = choose_rates(selection_study(best))
    assert float(choice.chosen_lr.sel(rule="bp", n_hidden=1)) == 1.0
    np.testing.assert_allclose(choice.selection_score.sel(rule="bp", n_hidden=1), [90.5, 95.0, 96.5, 97.0])
    assert choice.selection_correct.sel(rule="bp", n_hidden=1).values.tolist() == [1810, 1900, 1930, 1940]
    assert not bool(choice.chosen_fallback.any())


def test_an_exact_tie_goes_to_the_smaller_rate_decided_on_counts():
    from cortex_fa.protocol import choose_rates

    # 0.1 and 0.3 tie at 1930 images of 2 x 1000; as floats the means differ in the last bit
    best = np.array([[[[0.5, 0.965, 0.9650000000000001, 0.2], [0.5, 0.965, 0.9649999999999999, 0.2]]]])
    choice = choose_rates(selection_study(best))
    assert choice.selection_correct.sel(rule="bp", n_hidden=1, lr_candidate=[0.1, 0.3]).values.tolist() == [1930, 1930]
    assert float(choice.chosen_lr.sel(rule="bp", n_hidden=1)) == 0.1


@pytest.mark.parametrize("status, reason", [
    ("diverged", "diverged"),          # a diverged seed
    ("ok", "stalled_at_chance"),       # a seed that never left chance
    ("missing", ""),                   # a seed that did not run
])
def test_a_rate_with_a_failed_seed_is_not_eligible(status, reason):
    from cortex_fa.protocol import choose_rates

    best = np.array([[[[0.90, 0.95, 0.97, 0.99], [0.90, 0.95, 0.97, 0.99]]]])
    st, rs = np.full(best.shape, "ok", dtype=object), np.full(best.shape, "early_stop", dtype=object)
    st[0, 0, 1, 3], rs[0, 0, 1, 3] = status, reason
    choice = choose_rates(selection_study(best, status=st.astype(str), reason=rs.astype(str)))
    assert choice.selection_eligible.sel(rule="bp", n_hidden=1).values.tolist() == [True, True, True, False]
    assert float(choice.chosen_lr.sel(rule="bp", n_hidden=1)) == 0.3  # the best eligible, not 1.0


def test_no_eligible_rate_falls_back_to_the_smallest_and_says_so():
    from cortex_fa.protocol import choose_rates

    best = np.full((1, 1, 2, 4), 0.1)  # everything at chance
    choice = choose_rates(selection_study(best))
    assert float(choice.chosen_lr.squeeze()) == 0.03 and bool(choice.chosen_fallback.squeeze())


def test_choose_rates_refuses_a_study_without_an_lr_grid():
    from cortex_fa.errors import ResultsError
    from cortex_fa.protocol import choose_rates

    with pytest.raises(ResultsError, match="not a selection study"):
        choose_rates(selection_study(np.full((1, 1, 2, 4), 0.9)).isel(lr=0, drop=True))


# -- the preset's [protocol] table ---------------------------------------------------------


def _preset(tmp_path, **protocol):
    from cortex_fa import presets

    table = {"reference": "bp", "selection_rates": [0.03, 0.1, 0.3, 1.0], "selection_seeds": [0, 1],
             "exclusion": "none", "margin_images": 50, "metric": "selected", **protocol}
    table = {k: v for k, v in table.items() if v is not None}
    lines = ["[run]", "validation = 1000", "epochs = 1", "[sweep]", 'rules = ["bp", "fa"]', "depths = [1]",
             "width = 8", "seeds = [0, 1, 2]", "[protocol]"] + [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path = tmp_path / "p.toml"
    path.write_text("\n".join(lines) + "\n")
    return presets.load(str(path))


def test_the_shipped_protocol_preset_declares_everything():
    from cortex_fa import presets
    from cortex_fa.protocol import check_protocol, selection_spec

    preset = presets.load("depth_protocol")
    protocol = check_protocol(preset)
    assert protocol["selection_rates"] == [0.03, 0.1, 0.3, 1.0] and protocol["exclusion"] == "none"
    spec = preset.spec()
    assert spec.rules == ("bp", "bp_wd", "fa", "usf", "brsf", "dfa", "ifa", "kp")
    assert spec.depths == tuple(range(1, 8)) and spec.seeds == tuple(range(8))
    by = {c.study_label: c for c in spec.configs() if c.depth == 1 and c.seed == 0}
    assert by["bp_wd"].weight_decay == by["kp"].rule_params["decay"] == 0.001
    assert by["fa"].lr_schedule == "plateau" and by["fa"].lr_patience == 2 and by["fa"].patience == 6
    sel = selection_spec(preset, quick=True)
    assert sel.seeds == (0, 1) and sel.grid == {"lr": (0.03, 0.1, 0.3, 1.0)}


@pytest.mark.parametrize("change, message", [
    ({"selection_rates": [0.1, 0.3, 1.0]}, "at least 4"),
    ({"selection_seeds": [0]}, "at least 2"),
    ({"selection_seeds": [0, 9]}, "must be seeds of the study"),
    ({"reference": "kp"}, "reference 'kp' is not one of the rules"),
    ({"exclusion": "whatever"}, "exclusion must be one of"),
    ({"metric": "oracle_best"}, "metric must be selected or final"),
    ({"margin_images": -1}, "margin_images"),
    ({"margin_images": None}, "missing margin_images"),
    ({"extra": 1}, "unknown key"),
])
def test_a_bad_protocol_is_a_one_line_error(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message) as info:
        _preset(tmp_path, **change)
    assert "\n" not in str(info.value)


def test_study_spec_sets_each_cell_at_its_chosen_rate_and_reuses_the_selection_seeds(tmp_path):
    from cortex_fa.protocol import choose_rates, study_spec

    preset = _preset(tmp_path)
    best = np.array([[[[0.9, 0.95, 0.97, 0.2]] * 2], [[[0.9, 0.99, 0.97, 0.2]] * 2]])  # bp -> 0.3, fa -> 0.1
    choice = choose_rates(selection_study(best))
    spec = study_spec(preset, choice)
    assert spec.seeds == (2,) and spec.per_cell == {"bp@1": {"lr": 0.3}, "fa@1": {"lr": 0.1}}
    assert study_spec(preset, choice, reuse=False).seeds == (0, 1, 2)
    with pytest.raises(ConfigError, match="no choice for depth"):
        study_spec(preset, choice, depths=[3])


# -- the command line, end to end on the real MNIST ---------------------------------------


def _cli(*argv, cwd):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "cortex_fa.cli", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.parametrize("argv, message", [
    (("protocol", "select", "depth_study", "--out", "x.nc"), "declares no protocol"),
    (("protocol", "select", "nope", "--out", "x.nc"), "unknown preset"),
    (("protocol", "select", "depth_protocol", "--depths", "1,x", "--out", "x.nc", "--quick"), "--depths"),
    (("protocol", "study", "depth_protocol", "--selection", "missing.nc", "--out", "x.nc"), "missing.nc"),
    (("protocol", "combine", "missing.nc", "--out", "x.nc"), "missing.nc"),
    (("protocol", "cost", "missing.nc"), "missing.nc"),
    (("reproduce", "depth_protocol", "--quick"), "cortex-fa protocol select"),
])
def test_bad_protocol_commands_are_one_line_errors(tmp_path, argv, message):
    out = _cli(*argv, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


@pytest.mark.slow
@pytest.mark.mnist
@pytest.mark.dask
def test_protocol_select_study_combine_report_on_mnist(tmp_path, mnist, monkeypatch, capsys):
    from cortex_fa.cli import main
    from cortex_fa.results import open_results

    # select and study run in this process (their Dask workers are processes of their own): the
    # commands' own code is measured by coverage; the rest go through the installed entry point
    monkeypatch.chdir(tmp_path)
    assert main(["protocol", "select", "depth_protocol", "--quick", "--depths", "1,3", "--out", "sel.nc",
                 "--workers", "2", "--quiet"]) == 0, capsys.readouterr().err
    for depth in (1, 3):
        capsys.readouterr()
        assert main(["protocol", "study", "depth_protocol", "--quick", "--selection", "sel.nc", "--depths",
                     str(depth), "--out", f"study_d{depth}.nc", "--workers", "2", "--quiet"]) == 0
        assert "of which 0, 1 from the selection" in capsys.readouterr().out
    # a study chunk cannot serve as a selection
    bad = _cli("protocol", "study", "depth_protocol", "--quick", "--selection", "study_d1.nc", "--out", "y.nc",
               cwd=tmp_path)
    assert bad.returncode == 2 and "not a selection" in bad.stderr
    comb = _cli("protocol", "combine", "study_d3.nc", "study_d1.nc", "--out", "study.nc", cwd=tmp_path)
    assert comb.returncode == 0, comb.stderr
    # docs/cli.md's order (mapped here from tests/test_docs.py) gives the same study
    comb = _cli("protocol", "combine", "study_d1.nc", "study_d3.nc", "--out", "protocol_study.nc", cwd=tmp_path)
    assert comb.returncode == 0, comb.stderr
    assert open_results(tmp_path / "protocol_study.nc").drop_attrs().identical(
        open_results(tmp_path / "study.nc").drop_attrs())
    study, selection = open_results(tmp_path / "study.nc"), open_results(tmp_path / "sel.nc")
    assert list(study["n_hidden"].values) == [1, 3] and list(study["seed"].values) == [0, 1, 2]
    assert list(study["rule"].values) == ["bp", "bp_wd", "fa", "kp"]
    assert json.loads(study.attrs["protocol"])["reference"] == "bp" and study.attrs["protocol_preset"] == "depth_protocol"
    assert (study["status"] != "missing").all()
    # the selection seeds' runs are the selection's runs at the chosen rate, and every run is at its cell's rate
    for rule in study["rule"].values:
        for depth in (1, 3):
            lr = float(study["chosen_lr"].sel(rule=rule, n_hidden=depth))
            for seed in (0, 1, 2):
                cfg = json.loads(str(study["config"].sel(rule=rule, n_hidden=depth, seed=seed).values))
                assert cfg["lr"] == lr and cfg.get("label", "") == ("bp_wd" if rule == "bp_wd" else "")
            for seed in (0, 1):
                a = study["test_accuracy"].sel(rule=rule, n_hidden=depth, seed=seed).dropna("step")
                b = selection["test_accuracy"].sel(rule=rule, n_hidden=depth, seed=seed, lr=lr).dropna("step")
                np.testing.assert_array_equal(a.values, b.values)
    # cost: the selection seeds' runs are counted once, in the selection; the study adds its third seed
    capsys.readouterr()
    assert main(["protocol", "cost", "sel.nc", "study_d1.nc", "study_d3.nc"]) == 0
    lines = capsys.readouterr().out.splitlines()
    n_selection = int((selection["status"] != "missing").sum())
    assert lines[1].split()[:5] == ["sel.nc", "selection", "1,3", str(n_selection), str(n_selection)]
    for line, depth in zip(lines[2:4], (1, 3)):
        assert line.split()[:5] == [f"study_d{depth}.nc", "study", str(depth), "12", "4"]
    seconds = sum(float(open_results(tmp_path / f)["wall_time"].max("step").sel(**at).sum())
                  for f, at in (("sel.nc", {}), ("study_d1.nc", {"seed": 2}), ("study_d3.nc", {"seed": 2})))
    from cortex_fa.training_time import hours_minutes

    assert lines[-1].startswith(f"all: {hours_minutes(seconds)} of training in {n_selection + 8} runs")
    rep = _cli("report", "protocol_study.nc", "--no-write", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert "Learning rate chosen per rule and depth" in rep.stdout and "Stop reasons" in rep.stdout
    assert "Verdicts vs bp" in rep.stdout and "margin 50 images" in rep.stdout
