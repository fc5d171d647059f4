"""Rule plugins: a rule in another installed package (entry-point group ``cortex_fa.rules``).

Each test builds real installed distributions in a temporary directory (a
package plus a ``NAME-0.1.dist-info`` with ``METADATA`` and
``entry_points.txt``), the layout pip leaves in site-packages. Subprocesses
see them through ``PYTHONPATH``; in-process tests put the directory on
``sys.path`` and restore the path, the module cache and the registry after.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cortex_fa as cfa
from cortex_fa import rules
from cortex_fa.errors import ConfigError

# The checkout whose cortex_fa these tests import: subprocesses must import the same one.
CHECKOUT = Path(cfa.__file__).resolve().parents[1]
TIMEOUT = 600
TINY = ["--hidden", "20", "--train-subset", "500", "--epochs", "1", "--probe-size", "100", "--quiet"]

SCALED_FA = '''
"""A rule published by another package: FA through a fixed random B times a constant."""

from cortex_fa.errors import ConfigError
from cortex_fa.rules import LearningRule


class ScaledFA(LearningRule):
    """B_l = scale * R_l, R_l drawn as FA draws it (same seed: same R)."""

    name = "scaled_fa"
    summary = "feedback alignment through scaled random feedback"
    reads_weights = False
    defaults = {"scale": 0.5}

    @classmethod
    def check_config(cls, config):
        scale = cls(**config.rule_params).params["scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
            raise ConfigError(f"rule_params.scale must be a number > 0, got {scale!r}")

    def init_state(self, network, rng):
        scale = self.params["scale"]
        return {"B": {l: (scale * b).astype(b.dtype) for l, b in self.draw_feedback(network, rng).items()}}

    def feedback(self, weights, state, layer):
        return state["B"][layer]
'''

BAD_RULES = '''
from cortex_fa.rules.feedback_alignment import FeedbackAlignment


class Misnamed(FeedbackAlignment):
    name = "right_name"


class NotFA(FeedbackAlignment):
    name = "fa"


def not_a_rule():
    return None
'''

DEMO_PACKAGES = ("cfa_plugin_demo", "cfa_bad_demo", "cfa_missing_demo")


def make_dist(root: Path, dist: str, modules: dict, entry_points: dict) -> Path:
    """Write an installed distribution under ``root``: modules by dotted name, entry points by name."""
    for dotted, source in modules.items():
        path = root.joinpath(*dotted.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        for package in path.relative_to(root).parents:
            if str(package) != ".":
                (root / package / "__init__.py").touch()
        path.write_text(source)
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[cortex_fa.rules]\n" + "".join(f"{name} = {value}\n" for name, value in entry_points.items()))
    return root


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """``cfa_plugin_demo``: the rule ``scaled_fa``."""
    return make_dist(tmp_path_factory.mktemp("demo"), "cfa_plugin_demo", {"cfa_plugin_demo.rule": SCALED_FA},
                     {"scaled_fa": "cfa_plugin_demo.rule:ScaledFA"})


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    """``cfa_broken_demo``: an entry point to a module that does not exist."""
    return make_dist(tmp_path_factory.mktemp("broken"), "cfa_broken_demo", {},
                     {"broken": "cfa_missing_demo.rule:Broken"})


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    """``cfa_bad_demo``: a name that is not the class's, a clash with a built-in, a function."""
    return make_dist(tmp_path_factory.mktemp("bad"), "cfa_bad_demo", {"cfa_bad_demo.rules": BAD_RULES},
                     {"wrong_name": "cfa_bad_demo.rules:Misnamed", "fa": "cfa_bad_demo.rules:NotFA",
                      "not_a_rule": "cfa_bad_demo.rules:not_a_rule"})


@contextlib.contextmanager
def installed(*roots):
    """The distributions under ``roots`` installed in this process, and forgotten again after."""
    entries = [str(r) for r in roots]
    sys.path[:0] = entries
    importlib.invalidate_caches()
    rules.reset_plugins()  # the registry may have looked already, before these were installed
    try:
        yield
    finally:
        for entry in entries:
            sys.path.remove(entry)
        for name in [m for m in sys.modules if m.partition(".")[0] in DEMO_PACKAGES]:
            del sys.modules[name]
        importlib.invalidate_caches()
        rules.reset_plugins()


def env_with(*roots) -> dict:
    """Environment of a subprocess that has the distributions under ``roots`` installed."""
    env = dict(os.environ)
    path = [*map(str, roots), str(CHECKOUT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(PYTHONPATH=os.pathsep.join(path), MPLBACKEND="Agg", BOKEH_BROWSER="none")
    return env


def cli(args, cwd, *roots):
    return subprocess.run([sys.executable, "-m", "cortex_fa.cli", *args], cwd=cwd, env=env_with(*roots),
                          capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def python(code, cwd, *roots):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env_with(*roots), capture_output=True,
                          text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("cortex-fa: error:")]


# -- the registry, in this process ----------------------------------------------------

def test_a_plugin_rule_is_found_when_asked_for_and_trains(demo, tiny_data):
    assert "scaled_fa" not in rules.available()
    with installed(demo):
        assert "cfa_plugin_demo.rule" not in sys.modules  # nothing imported until the registry looks
        rule_class = rules.get("scaled_fa")
        assert rule_class.__module__ == "cfa_plugin_demo.rule" and "scaled_fa" in rules.available()
        base = cfa.RunConfig(rule="fa", hidden=(32,), train_subset=300, probe_size=100, seed=3)
        fa = cfa.train(base, tiny_data, progress=False)
        scaled = cfa.train(base.replace(rule="scaled_fa", rule_params={"scale": 0.25}), tiny_data, progress=False)
        with pytest.raises(ConfigError, match="scale must be a number > 0"):
            cfa.RunConfig(rule="scaled_fa", rule_params={"scale": -1})
    assert scaled.attrs["rule"] == "scaled_fa"
    # the plugin's class is the one that trained: same seed, same R, a quarter of FA's hidden delta
    start = {name: ds.isel(step=0).sel(layer=1) for name, ds in (("fa", fa), ("scaled", scaled))}
    np.testing.assert_allclose(start["scaled"].delta_norm, 0.25 * start["fa"].delta_norm, rtol=1e-5)
    np.testing.assert_allclose(start["scaled"].delta_alignment, start["fa"].delta_alignment, atol=1e-3)
    assert "scaled_fa" not in rules.available()  # cleaned up: the registry forgot it with the path


def test_broken_plugins_warn_once_and_leave_every_other_rule_working(demo, broken, bad, caplog):
    with installed(demo, broken, bad), caplog.at_level(logging.WARNING, logger="cortex_fa.rules"):
        names = rules.available()
        assert {"scaled_fa", "fa", "bp"} <= set(names)
        assert not {"broken", "wrong_name", "right_name", "not_a_rule"} & set(names)
        assert rules.get("fa").__module__ == "cortex_fa.rules.feedback_alignment"  # never replaced
        cfa.RunConfig(rule="fa")
        cfa.RunConfig(rule="scaled_fa")
        warned = [r.getMessage() for r in caplog.records]
        rules.available(), rules.get("scaled_fa")
        assert len(caplog.records) == len(warned) == 4  # once each, not on every lookup
        text = "\n".join(warned)
        assert "plugin 'broken = cfa_missing_demo.rule:Broken' of cfa_broken_demo 0.1 failed to load" in text
        assert "ModuleNotFoundError" in text and "'fa' is already a rule" in text
        assert all(line.startswith("cortex-fa: warning:") and "\n" not in line for line in warned)

        with pytest.raises(ConfigError) as info:
            cfa.RunConfig(rule="broken")
        message = str(info.value)
        assert message.startswith("rule 'broken' is not available: plugin 'broken = cfa_missing_demo.rule:Broken'")
        assert "No module named 'cfa_missing_demo'" in message and "\n" not in message
        with pytest.raises(ConfigError, match=r"the entry point's name must equal the class's name: "
                                              r"right_name = cfa_bad_demo.rules:Misnamed"):
            rules.get("wrong_name")
        with pytest.raises(ConfigError, match="not a subclass of cortex_fa.rules.LearningRule"):
            rules.get("not_a_rule")
        with pytest.raises(ConfigError, match=r"rule 'nope' is not known; use one of bp, .*scaled_fa"):
            cfa.RunConfig(rule="nope")


def test_importing_cortex_fa_and_naming_a_builtin_rule_imports_no_plugin(demo, tmp_path):
    code = ("import sys, cortex_fa as cfa\n"
            "cfa.RunConfig(rule='fa')\n"
            "print('cfa_plugin_demo.rule' in sys.modules)\n"
            "print('scaled_fa' in cfa.rules.available(), 'cfa_plugin_demo.rule' in sys.modules)\n")
    done = python(code, tmp_path, demo)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "True"]


def test_a_file_of_a_rule_not_installed_reads_everywhere_but_does_not_train(tmp_path, tiny_data):
    """No plugin here: the files say 'scaled_fa', which only labels them."""
    base = cfa.RunConfig(rule="fa", hidden=(16,), train_subset=200, probe_size=50)
    runs = [cfa.train(base.replace(seed=seed), tiny_data, progress=False) for seed in (0, 1)]
    for seed, ds in enumerate(runs):
        config = {**json.loads(ds.attrs["config"]), "rule": "scaled_fa", "rule_params": {"scale": 0.5}}
        ds.attrs.update(config=json.dumps(config, sort_keys=True), rule="scaled_fa")
        cfa.save_results(ds, tmp_path / f"scaled_{seed}.nc")
    cfa.save_results(cfa.train(base, tiny_data, progress=False), tmp_path / "fa.nc")

    study = cfa.open_results(tmp_path)  # combining run files rebuilds each run's config
    assert list(study.rule.values) == ["fa", "scaled_fa"] and list(study.seed.values) == [0, 1]
    assert (study.status.sel(rule="scaled_fa") == "ok").all()  # not dropped: both runs are there
    assert study.status.sel(rule="fa", seed=1).item() == "missing"

    stored = cfa.open_results(tmp_path / "scaled_0.nc").attrs["config"]
    config = cfa.RunConfig.from_json(stored)
    assert (config.rule, config.rule_params) == ("scaled_fa", {"scale": 0.5})
    assert json.loads(config.to_json()) == json.loads(stored)  # read as written: the hash names the same run
    with pytest.raises(ConfigError, match="rule 'scaled_fa' is not known; use one of bp, fa"):
        cfa.RunConfig.from_json(stored, rule_as_label=False)
    with pytest.raises(ConfigError, match="rule 'scaled_fa' is not known"):
        cfa.train(config, tiny_data, progress=False)
    with pytest.raises(ConfigError, match="rule 'scaled_fa' is not known"):
        config.replace(epochs=2)
    with pytest.raises(ConfigError, match="lr must be > 0"):  # everything but the rule is still checked
        cfa.RunConfig.from_json(json.dumps({**json.loads(stored), "lr": -1}))


# -- the command line, on MNIST, with and without the plugin installed --------------------

@pytest.fixture(scope="module")
def trained(demo, broken, tmp_path_factory):
    """A run and a study (sweep on a LocalCluster of 2 worker processes) of the plugin's rule."""
    where = tmp_path_factory.mktemp("trained")
    run = cli(["run", "--rule", "scaled_fa", "--rule-params", '{"scale": 0.25}', *TINY, "--out", "run.nc"],
              where, demo)
    assert run.returncode == 0, run.stderr
    sweep = cli(["sweep", "--rules", "scaled_fa,fa", "--depths", "1", "--width", "16", "--train-subset", "300",
                 "--epochs", "1", "--probe-size", "50", "--workers", "2", "--quiet", "--out", "study.nc"],
                where, demo, broken)
    assert sweep.returncode == 0, sweep.stderr
    # the sweep's process warns about the broken plugin; its workers, which load plugins too, do not repeat it
    assert sweep.stderr.count("cortex-fa: warning: plugin 'broken = ") == 1, sweep.stderr
    return where


@pytest.mark.mnist
@pytest.mark.dask
def test_run_and_sweep_train_the_plugin_rule_here_and_on_dask_workers(trained):
    run = cfa.open_results(trained / "run.nc")
    assert run.attrs["rule"] == "scaled_fa" and json.loads(run.attrs["config"])["rule_params"] == {"scale": 0.25}
    assert run.attrs["status"] == "ok" and np.isfinite(float(run.test_accuracy.isel(step=-1)))
    study = cfa.open_results(trained / "study.nc")
    assert list(study.rule.values) == ["scaled_fa", "fa"] and (study.status == "ok").all()
    start = study.isel(step=0, n_hidden=0, seed=0).sel(layer=1)  # the workers trained the plugin's class
    np.testing.assert_allclose(start.delta_norm.sel(rule="scaled_fa"), 0.5 * start.delta_norm.sel(rule="fa"),
                               rtol=1e-5)


APP = """
import sys
from cortex_fa import rules
from cortex_fa.viz.app import create_app
from cortex_fa.viz.data import load_many

app = create_app(load_many(sys.argv[1:]))
root = app.get_root()
for dash in app.dashboards:
    print(",".join(dash.w["rules"].options), len(dash.figures) > 0)
print("scaled_fa" in rules._REGISTRY)  # reading never asked the registry: the rule is a label
print("scaled_fa" in rules.available())  # whether the plugin is installed
"""


@pytest.mark.mnist
@pytest.mark.dask
@pytest.mark.parametrize("with_plugin", [False, True], ids=["plugin absent", "plugin installed"])
def test_report_plot_and_app_read_the_files(trained, demo, with_plugin, tmp_path):
    roots = (demo,) if with_plugin else ()
    for path in ("run.nc", "study.nc", "study.runs"):  # study.runs: run files combined on reading
        done = cli(["report", str(trained / path), "--no-write"], tmp_path, *roots)
        assert done.returncode == 0, done.stderr
        assert "scaled_fa" in done.stdout and not done.stderr
    for path in ("run.nc", "study.nc"):
        done = cli(["plot", str(trained / path), "--out", "figs", "--format", "html",
                    "--only", "learning_curves,alignment_curves"], tmp_path, *roots)
        assert done.returncode == 0, done.stderr
    assert {p.name for p in (tmp_path / "figs").iterdir()} >= {"learning_curves.html", "alignment_curves.html"}
    assert "scaled_fa" in (tmp_path / "figs" / "learning_curves.html").read_text()
    app = [str(trained / p) for p in ("run.nc", "study.nc", "study.runs")]
    done = subprocess.run([sys.executable, "-c", APP, *app], cwd=tmp_path, env=env_with(*roots),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["scaled_fa True", "scaled_fa,fa True", "fa,scaled_fa True",
                                        "False", str(with_plugin)]


@pytest.mark.mnist
def test_a_broken_plugin_leaves_the_command_line_working(demo, broken, tmp_path):
    done = cli(["run", "--rule", "fa", *TINY, "--out", "fa.nc"], tmp_path, demo, broken)
    assert done.returncode == 0, done.stderr
    assert cfa.open_results(tmp_path / "fa.nc").attrs["rule"] == "fa"

    done = cli(["run", "--rule", "scaled_fa", *TINY, "--out", "scaled.nc"], tmp_path, demo, broken)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "cortex-fa: warning: plugin 'broken = cfa_missing_demo.rule:Broken' of cfa_broken_demo 0.1 failed to load "
        "(ModuleNotFoundError: No module named 'cfa_missing_demo'); rule 'broken' is unavailable, the other rules work"]

    done = cli(["run", "--rule", "broken", *TINY, "--out", "broken.nc"], tmp_path, demo, broken)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (error,) = errors(done.stderr)
    assert error.startswith("cortex-fa: error: rule 'broken' is not available: plugin 'broken = "
                            "cfa_missing_demo.rule:Broken' of cfa_broken_demo 0.1 failed to load")
    assert "No module named 'cfa_missing_demo'" in error
    assert not (tmp_path / "broken.nc").exists()
