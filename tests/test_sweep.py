"""Sweep specs, grids, run dirs and combine_runs, without starting Dask processes."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from cortex_fa import study as study_mod
from cortex_fa.cli import main
from cortex_fa.config import RunConfig
from cortex_fa.errors import ConfigError, ResultsError
from cortex_fa.results import open_results, save_results
from cortex_fa.cli.sweep import convert_values, spec_from_text, split_values
from cortex_fa.sweep import SweepSpec, run_sweep


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- specs and grids ------------------------------------------------------------------

def test_spec_is_the_full_product_with_typed_grid_values():
    spec = spec_from_text({"rules": "bp,fa", "depths": "1,3", "seeds": [0, 1], "width": "32",
                                 "grid": {"lr": "0.01,0.05", "log_early": "false,true"}}, {"epochs": 2})
    configs = spec.configs()
    assert len(configs) == 2 * 2 * 2 * 2 * 2
    assert {c.lr for c in configs} == {0.01, 0.05} and {c.log_early for c in configs} == {False, True}
    assert {c.hidden for c in configs} == {(32,), (32, 32, 32)}
    assert all(c.epochs == 2 for c in configs)
    assert len({c.hash() for c in configs}) == len(configs)


def test_split_values_keeps_json_objects_whole():
    assert split_values('{"decay": 0.1, "x": 2},{"decay": 0.2}') == ['{"decay": 0.1, "x": 2}', '{"decay": 0.2}']
    assert convert_values("rule_params", '{"decay": 0.1},{"decay": 0.2}') == [{"decay": 0.1}, {"decay": 0.2}]
    assert convert_values("train_subset", "none,1000") == [None, 1000]


@pytest.mark.parametrize("table, message", [
    ({"rules": "", "depths": "1"}, "rules is empty"),
    ({"rules": "bp", "depths": ""}, "depths is empty"),
    ({"rules": "bp", "grid": {"lr": ""}}, "grid 'lr' has no values"),
    ({"rules": "bp", "grid": {"lrr": "0.1"}}, "did you mean 'lr'"),
    ({"rules": "bp", "grid": {"lr": "0.1,-1"}}, "sweep cell rule=bp depth=1 lr=-1.0: lr must be > 0"),
    ({"rules": "bp", "grid": {"batch_size": "ten"}}, "not a valid int"),
    ({"rules": "bp,nope"}, "rule=nope depth=1: rule 'nope' is not known"),
    ({"rules": "bp", "grid": {"seed": "1,2"}}, "use --seeds"),
    ({"depths": "1"}, "needs rules"),
])
def test_bad_specs_are_one_line_config_errors(table, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        spec_from_text(table)
    assert "\n" not in str(info.value)


def test_cli_empty_grid_is_one_line_error(tmp_path, capsys):
    status = main(["sweep", "--rules", "bp", "--grid", "lr=", "--out", str(tmp_path / "s.nc")])
    assert status == 2
    assert "grid 'lr' has no values" in one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_cli_reads_sweep_and_grid_tables_from_config(tmp_path):
    from cortex_fa.cli import build_parser
    from cortex_fa.cli.sweep import build_spec

    cfg = tmp_path / "s.toml"
    cfg.write_text('[run]\nepochs = 3\n[sweep]\nrules = ["bp", "fa"]\ndepths = [1, 2]\nwidth = 16\n'
                   '[grid]\nlr = [0.01, 0.02]\n')
    args = build_parser().parse_args(["sweep", "--config", str(cfg), "--depths", "4", "--grid", "batch_size=50,100"])
    spec = build_spec(args)
    assert spec.rules == ("bp", "fa") and spec.depths == (4,) and spec.width == 16
    assert spec.grid == {"lr": (0.01, 0.02), "batch_size": (50, 100)} and spec.base == {"epochs": 3}


# -- run dirs ---------------------------------------------------------------------------

def _spec(**kw):
    return SweepSpec(**{"rules": ("bp",), "depths": (1,), "seeds": (0,), "width": 8,
                        "base": {"train_subset": 100}, **kw})


def test_run_dir_of_another_sweep_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "s.runs"
    run_dir.mkdir()
    other = _spec(seeds=(5,))
    (run_dir / "sweep.json").write_text(json.dumps({"spec": other.to_dict(), "runs": ["x"]}))
    with pytest.raises(ResultsError, match="belongs to a different sweep"):
        run_sweep(_spec(), tmp_path / "s.nc", scheduler="tcp://127.0.0.1:1")  # refused before connecting
    status = main(["sweep", "--rules", "bp", "--width", "8", "--out", str(tmp_path / "s.nc")])
    assert status == 2 and "different sweep" in one_line(capsys.readouterr().err)
    assert sorted(p.name for p in run_dir.iterdir()) == ["sweep.json"] and not (tmp_path / "s.nc").exists()


def test_same_runs_spelt_differently_share_a_run_dir(tmp_path):
    a, b = _spec(), _spec(base={"train_subset": 100, "lr": 0.05})  # lr 0.05 is the default
    manifest = lambda s: {"spec": s.to_dict(), "runs": sorted(c.hash() for c in s.configs())}  # noqa: E731
    study_mod.write_manifest(tmp_path, manifest(a))
    study_mod.check_run_dir(tmp_path, manifest(b))  # no error: the very same runs
    with pytest.raises(ResultsError, match="different sweep"):
        study_mod.check_run_dir(tmp_path, manifest(_spec(base={"train_subset": 100, "lr": 0.1})))


def test_run_dir_with_run_files_but_no_manifest_is_refused(tmp_path):
    (tmp_path / "s.runs").mkdir()
    (tmp_path / "s.runs" / "abc.nc").write_bytes(b"x")
    with pytest.raises(ResultsError, match="no sweep.json"):
        run_sweep(_spec(), tmp_path / "s.nc")


def test_garbage_run_file_is_moved_aside_with_a_warning(tmp_path, caplog):
    path = tmp_path / "0123456789abcdef.nc"
    path.write_bytes(b"\x89HDF\r\n garbage")
    with caplog.at_level(logging.WARNING):
        assert not study_mod.run_file_ok(path, "0123456789abcdef")
    assert not path.exists() and (tmp_path / "0123456789abcdef.nc.corrupt").exists()
    assert "moved it to 0123456789abcdef.nc.corrupt" in caplog.text
    assert not study_mod.run_file_ok(tmp_path / "absent.nc", "absent")


# -- combining runs ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist():
    from cortex_fa.data import load_mnist

    return load_mnist(progress=False)


def _train(mnist, **kw):
    from cortex_fa.training import train

    cfg = RunConfig(**{"hidden": (8,), "train_subset": 200, "probe_size": 50, "batch_size": 50, **kw})
    return train(cfg, mnist, progress=False)


@pytest.mark.mnist
def test_combine_pads_layers_and_steps_with_nan(mnist, tmp_path):
    shallow = _train(mnist, rule="fa", hidden=(8,))
    deep = _train(mnist, rule="fa", hidden=(8, 8, 8), epochs=2)
    study = study_mod.combine_runs([shallow, deep])
    assert dict(study.sizes) == {"rule": 1, "n_hidden": 2, "seed": 1, "epochs": 2, "step": deep.sizes["step"], "layer": 4}
    one = study.sel(rule="fa", n_hidden=1, seed=0, epochs=1)
    assert np.isnan(one.delta_norm.sel(layer=[3, 4])).all() and np.isfinite(one.delta_norm.sel(layer=2)).any()
    assert np.isnan(one.test_accuracy.sel(step=8)) and np.isfinite(one.test_accuracy.sel(step=4))
    assert study.status.sel(n_hidden=1, epochs=2).item() == "missing"
    assert study.status.sel(n_hidden=3, epochs=2).item() == "ok"
    assert study.epoch.dims == ("step",) and study.epoch.sel(step=8) == 2.0
    np.testing.assert_array_equal(study.sel(n_hidden=3, epochs=2, rule="fa", seed=0).test_accuracy.values,
                                  deep.test_accuracy.values)
    save_results(study, tmp_path / "study.nc")
    assert open_results(tmp_path / "study.nc").sizes["layer"] == 4


@pytest.mark.mnist
def test_combine_epoch_becomes_a_variable_when_steps_per_epoch_differ(mnist):
    runs = [_train(mnist, rule="bp", batch_size=b) for b in (50, 100)]
    study = study_mod.combine_runs(runs)
    assert "batch_size" in study.dims and study.epoch.dims[-1] == "step" and study.epoch.ndim == 5
    assert float(study.epoch.sel(batch_size=100, step=2).squeeze()) == 1.0
    assert float(study.epoch.sel(batch_size=50, step=2).squeeze()) == 0.5


@pytest.mark.mnist
def test_combine_refuses_duplicates_and_foreign_runs(mnist):
    run = _train(mnist, rule="bp")
    with pytest.raises(ResultsError, match="two runs for the same cell"):
        study_mod.combine_runs([run, run.copy()])
    other = run.copy()
    other.attrs["data_sha256"] = "f" * 64
    with pytest.raises(ResultsError, match="different data"):
        study_mod.combine_runs([run, other])
    with pytest.raises(ResultsError, match="already a study"):
        study_mod.combine_runs([study_mod.combine_runs([run])])
    uneven = [_train(mnist, rule="bp", hidden=h) for h in ((8, 4), (4, 8))]
    with pytest.raises(ResultsError, match="non-uniform hidden"):
        study_mod.combine_runs(uneven)


@pytest.mark.mnist
def test_open_results_on_run_dir_and_glob(mnist, tmp_path):
    for rule in ("bp", "fa"):
        run = _train(mnist, rule=rule)
        save_results(run, tmp_path / f"{run.attrs['config_hash']}.nc")
    for source in (tmp_path, f"{tmp_path}/*.nc"):
        study = open_results(source)
        assert list(study.rule.values) == ["bp", "fa"] and (study.status == "ok").all()


# -- per-rule options (each rule at its own learning rate) -----------------------------------

def test_per_rule_options_reach_their_rule_only():
    spec = spec_from_text({"rules": "bp,fa,kp", "depths": "2", "width": "8",
                           "per_rule": {"fa": {"lr": 0.2}, "kp": {"lr": 0.3, "rule_params": {"decay": 1e-3}}}},
                          {"lr": 0.05, "epochs": 1})
    by_rule = {c.rule: c for c in spec.configs()}
    assert (by_rule["bp"].lr, by_rule["fa"].lr, by_rule["kp"].lr) == (0.05, 0.2, 0.3)
    assert by_rule["kp"].rule_params == {"decay": 1e-3} and by_rule["fa"].rule_params == {}
    assert spec.to_dict()["per_rule"]["fa"] == {"lr": 0.2}
    # unused: no key, so a 0.2 manifest (without per_rule) still matches
    assert "per_rule" not in spec_from_text({"rules": "bp", "per_rule": {"fa": {"lr": 0.2}}}).to_dict()


@pytest.mark.parametrize("per_rule,grid,message", [
    ({"fx": {"lr": 0.1}}, {}, "unknown rule 'fx'"),
    ({"fa": {"lrr": 0.1}}, {}, "'lrr' is not a run option"),
    ({"fa": {"seed": 3}}, {}, "'seed' is not a run option that can be set per rule"),
    ({"fa": 0.1}, {}, "per_rule.fa must be a table"),
    ({"fa": {"lr": 0.1}}, {"lr": [0.1, 0.2]}, "also swept by the grid"),
    ({"fa": {"lr": -1.0}}, {}, "lr must be > 0"),
])
def test_bad_per_rule_options_are_one_line_errors(per_rule, grid, message):
    with pytest.raises(ConfigError) as info:
        SweepSpec.from_table({"rules": ["bp", "fa"], "per_rule": per_rule, "grid": grid})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_an_option_set_per_rule_is_not_a_study_dim(tiny_data):
    from cortex_fa.study import combine_runs, swept_options
    from cortex_fa.training import train

    runs = [train(RunConfig(rule=r, hidden=(8,), epochs=1, batch_size=100, lr=lr, seed=s, probe_size=32),
                  tiny_data, progress=False) for r, lr in (("bp", 0.05), ("fa", 0.2)) for s in (0, 1)]
    assert "lr" not in swept_options([RunConfig.from_json(r.attrs["config"]) for r in runs])
    study = combine_runs(runs)
    assert "lr" not in study.dims and set(study.dims) >= {"rule", "n_hidden", "seed"}
    assert json.loads(str(study.config.sel(rule="fa", seed=1).item()))["lr"] == 0.2
    # a real grid (two values within one rule) still is a dim
    more = runs + [train(RunConfig(rule="fa", hidden=(8,), epochs=1, batch_size=100, lr=0.05, seed=0,
                                   probe_size=32), tiny_data, progress=False)]
    assert "lr" in combine_runs(more).dims
