"""`cortex-fa run`: end to end on MNIST, and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import cortex_fa as cfa
from cortex_fa.cli import main


@pytest.mark.mnist
def test_run_writes_results_and_prints_summary(tmp_path, capsys):
    out = tmp_path / "run.nc"
    status = main(["run", "--rule", "fa", "--hidden", "64,32", "--epochs", "2", "--batch-size", "100",
                   "--lr", "0.2", "--seed", "0", "--train-subset", "2000", "--out", str(out)])
    assert status == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and f"wrote {out}" in text
    ds = cfa.open_results(out)
    assert ds.attrs["rule"] == "fa" and ds.sizes["layer"] == 3
    assert float(ds.test_accuracy.isel(step=-1)) > 0.6


@pytest.mark.mnist
def test_config_file_and_flags_compose(tmp_path):
    cfg = tmp_path / "fa.toml"
    cfg.write_text('[run]\nrule = "usf"\nhidden = [32]\nepochs = 1\ntrain_subset = 500\nlr = 0.1\n')
    out = tmp_path / "r.nc"
    assert main(["run", "--config", str(cfg), "--seed", "7", "--quiet", "--out", str(out)]) == 0
    ds = cfa.open_results(out)
    config = cfa.RunConfig.from_json(ds.attrs["config"])
    assert (config.rule, config.hidden, config.seed, config.lr) == ("usf", (32,), 7, 0.1)


BAD = [
    (["run", "--rule", "fax"], "rule 'fax'"),
    (["run", "--hidden", "0"], "hidden"),
    (["run", "--hidden", "12,-4"], "hidden"),
    (["run", "--hidden", ""], "hidden"),
    (["run", "--epochs", "0"], "epochs"),
    (["run", "--lr", "nan"], "lr"),
    (["run", "--lr", "-1"], "lr"),
    (["run", "--batch-size", "ten"], "batch-size"),
    (["run", "--activation", "tanhh"], "did you mean 'tanh'"),
    (["run", "--loss", "cross_entropy", "--output-activation", "sigmoid"], "softmax"),
    (["run", "--hidden", "1000000"], "max_parameters"),
    (["run", "--rule", "dfa", "--feedback-init", "zero"], "sends no signal"),
    (["run", "--rule-params", '{"decay": 1}'], "has no parameter 'decay'"),
    (["run", "--rule", "kp", "--rule-params", '{"decay": -1}'], "decay"),
    (["run", "--rule-params", "[1]"], "JSON object"),
    (["run", "--config", "/nonexistent/x.toml"], "does not exist"),
    (["run", "--out", "/nonexistent-dir/run.nc"], "does not exist"),
    (["run", "--out", "run.txt"], ".nc"),
    (["run", "--momentum", "1.5"], "momentum"),
    (["run", "--backend", "jax"], "backend 'jax'"),
    (["frobnicate"], "invalid choice"),
]


def run_cli(argv) -> int:
    """Call the CLI in-process; argparse errors exit via SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("argv,fragment", BAD)
def test_bad_input_is_one_line_and_status_2(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status = run_cli(argv)
    err = capsys.readouterr().err
    assert status == 2
    assert fragment in err, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_malformed_toml_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nrule = fa")
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not valid TOML" in err and err.count("\n") == 1


def test_unknown_toml_key_suggests(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[run]\nlearning_rate = 0.1\n")
    assert main(["run", "--config", str(cfg)]) == 2
    assert "unknown run option 'learning_rate'" in capsys.readouterr().err


def test_version_and_help_exit_cleanly():
    out = subprocess.run([sys.executable, "-m", "cortex_fa.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"cortex-fa {cfa.__version__}"
    bad = subprocess.run([sys.executable, "-m", "cortex_fa.cli", "run", "--nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("flag,field", [("--patience", "patience"), ("--train-subset", "train_subset")])
def test_a_none_flag_overrides_the_config_file(tmp_path, flag, field):
    """`--patience none` must switch off a preset's early stopping (argparse's 'not given' is None too)."""
    import argparse

    from cortex_fa.cli.options import add_run_options, run_options

    config = tmp_path / "c.toml"
    config.write_text("[run]\nvalidation = 1000\npatience = 10\ntrain_subset = 5000\n")
    parser = argparse.ArgumentParser()
    add_run_options(parser)
    assert run_options(parser.parse_args(["--config", str(config)]))[field] in (10, 5000)
    values = run_options(parser.parse_args(["--config", str(config), flag, "none"]))
    assert values[field] is None
    assert cfa.RunConfig.from_dict(values).to_dict()[field] is None
