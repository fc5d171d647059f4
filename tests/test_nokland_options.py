"""The options behind Nøkland 2016's recipe: bce, loss_reduction, rmsprop, stop_train_error, the preset.

References: finite differences (the bce output error), a hand-computed
RMSprop step, an unbroken run (a resumed rmsprop run), and the stop rule
recomputed from an uncapped run's own training accuracies.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cortex_fa import ConfigError, RunConfig, Simulation, activations, kernels, optim, presets, rules
from cortex_fa.backends.numpy_backend import NumpyModel
from cortex_fa.cli.options import add_run_options, run_options
from cortex_fa.network import Network
from cortex_fa.streams import RandomStreams

BASE = dict(hidden=(24, 16), epochs=2, batch_size=50, lr=1e-3)
RECIPE = dict(output_activation="sigmoid", loss="bce", loss_reduction="sum", optimizer="rmsprop")


def _bce(a, y):
    p = 1.0 / (1.0 + np.exp(-a))
    return -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_output_error_is_the_gradient_of_the_loss(reduction):
    rng = np.random.default_rng(0)
    n = 7
    a = rng.normal(0, 2, (n, 10))
    y = kernels.one_hot(rng.integers(0, 10, n), dtype=np.float64)
    sig = activations.get("sigmoid")
    h = sig.forward(a, np.empty_like(a))
    value, e = kernels.loss_and_error(a, h, y, "bce", sig, reduction)
    assert value == pytest.approx(_bce(a, y) / n, rel=1e-12)  # the reported loss is a per-example mean either way
    total = (lambda z: _bce(z, y)) if reduction == "sum" else (lambda z: _bce(z, y) / n)
    numeric = np.zeros_like(a)
    step = 1e-6
    for idx in np.ndindex(a.shape):
        up, down = a.copy(), a.copy()
        up[idx] += step
        down[idx] -= step
        numeric[idx] = (total(up) - total(down)) / (2 * step)
    np.testing.assert_allclose(e, numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(e, (h - y) / (n if reduction == "mean" else 1), rtol=1e-12)


def test_bce_loss_is_stable_for_saturated_outputs():
    a = np.array([[80.0, -80.0] + [0.0] * 8])
    y = kernels.one_hot(np.array([1]), dtype=np.float64)
    sig = activations.get("sigmoid")
    value, e = kernels.loss_and_error(a, sig.forward(a, np.empty_like(a)), y, "bce", sig)
    assert np.isfinite(value) and value == pytest.approx(80 + 80 + 8 * np.log(2), rel=1e-9)


def test_summed_loss_is_the_mean_loss_at_batch_size_times_the_rate(tiny_data):
    """With SGD, sum at rate lr moves the weights exactly as mean at lr * N (the update scales with the batch)."""
    x = kernels.normalise(tiny_data.train_images[:32])
    labels = tiny_data.train_labels[:32]
    models = []
    for reduction, lr in (("sum", 1e-3), ("mean", 32e-3)):
        cfg = RunConfig(rule="dfa", hidden=(20,), output_activation="sigmoid", loss="bce", loss_reduction=reduction,
                        lr=lr, batch_size=32)
        model = NumpyModel(Network.from_config(cfg), rules.get("dfa")(), cfg, RandomStreams(0))
        model.train_batch(x, kernels.one_hot(labels), labels, cfg.lr)
        models.append(model)
    for Wa, Wb in zip(models[0].weights, models[1].weights):
        np.testing.assert_allclose(Wa, Wb, rtol=1e-5, atol=1e-7)


def test_rmsprop_steps_match_a_hand_computed_reference():
    rng = np.random.default_rng(1)
    alpha, eps, lr = 0.9, 1e-3, 0.01
    grads = [rng.normal(size=(3, 4)) for _ in range(3)]
    opt = optim.make("rmsprop", [np.zeros((3, 4), np.float32)], alpha=alpha, eps=eps)
    assert isinstance(opt, optim.RMSprop)
    v = np.zeros((3, 4))
    for g in grads:
        (step,) = opt.steps([g.astype(np.float32)], lr)
        v = alpha * v + (1 - alpha) * g**2  # torch.optim.RMSprop, written out
        np.testing.assert_allclose(step, -lr * g / (np.sqrt(v) + eps), rtol=2e-6)
        np.testing.assert_allclose(opt.square_avg[0], v, rtol=2e-6)
    # the first step of torch's RMSprop (no bias correction): lr * g / (sqrt(1 - alpha) |g| + eps)
    first = optim.make("rmsprop", [np.zeros(1, np.float32)], alpha=0.99, eps=1e-8).steps([np.array([2.0], np.float32)], 1.0)[0]
    assert first[0] == pytest.approx(-2.0 / (np.sqrt(0.01) * 2.0 + 1e-8), rel=1e-6)


def test_rmsprop_run_resumed_from_a_checkpoint_equals_an_unbroken_one(tiny_data, tmp_path):
    cfg = RunConfig(rule="dfa", **{**BASE, **RECIPE, "epochs": 3, "dropout": 0.2, "input_dropout": 0.1})
    whole = Simulation(cfg, data=tiny_data, progress=False).run()
    first = Simulation(cfg, data=tiny_data, progress=False).run(epochs=1)
    path = first.store(tmp_path / "rms.nc")
    with xr.open_dataset(path) as plain:
        assert "optimizer__square_avg__0" in plain and float(np.abs(plain["optimizer__square_avg__0"]).max()) > 0
    again = Simulation.restore(path, data=tiny_data, progress=False).run()
    assert again.step == whole.step
    xr.testing.assert_identical(whole.results.drop_vars("wall_time").drop_attrs(),
                                again.results.drop_vars("wall_time").drop_attrs())
    xr.testing.assert_identical(whole.weights.drop_attrs(), again.weights.drop_attrs())
    for a, b in zip(whole.model.optimizer.square_avg, again.model.optimizer.square_avg):
        np.testing.assert_array_equal(a, b)


def test_stop_train_error_stops_at_the_first_epoch_at_or_below_the_target(tiny_data):
    cfg = RunConfig(rule="fa", **{**BASE, "lr": 0.05, "epochs": 8})
    free = Simulation(cfg, data=tiny_data, progress=False).run().results
    ends = free["train_accuracy"].where(free["step"] % 12 == 0, drop=True).dropna("step")
    error = 100 * (1 - ends.values)
    target = float(np.round(error[2] + 0.01, 2))  # reached at the third epoch end, or earlier
    first = int(np.argmax(error <= target)) + 1
    assert first <= 3
    sim = Simulation(cfg.replace(stop_train_error=target), data=tiny_data, progress=False).run()
    ds = sim.results
    assert ds.attrs["stop_reason"] == "train_error_target" and sim.stop_reason == "train_error_target"
    assert sim.epoch == first and sim.epoch < cfg.epochs
    assert 100 * (1 - float(ds["train_accuracy"].values[-1])) <= target
    assert sim.run().epoch == first  # a run that met its target does not train on


def test_an_unmet_training_error_target_runs_to_the_epoch_cap(tiny_data):
    sim = Simulation(RunConfig(rule="fa", **{**BASE, "lr": 0.05, "epochs": 3, "stop_train_error": 0.0}),
                     data=tiny_data, progress=False).run()
    assert float(sim.results["train_accuracy"].values[-1]) < 1.0  # the target (no error at all) was not met
    assert sim.results.attrs["stop_reason"] == "epoch_cap" and sim.epoch == 3


@pytest.mark.parametrize("options, words", [
    ({"loss": "bce", "output_activation": "sigmoid"}, "loss bce"),
    ({"loss_reduction": "sum"}, "loss_reduction sum"),
    ({"optimizer": "rmsprop"}, "optimizer rmsprop"),
    ({"input_scaling": "unit"}, "input_scaling unit"),
])
def test_brian2_refuses_the_recipe_options_in_one_line(options, words):
    with pytest.raises(ConfigError) as info:
        RunConfig(rule="fa", backend="brian2", **options)
    message = str(info.value)
    assert words in message and "numpy backend only" in message and "\n" not in message


@pytest.mark.parametrize("options, words", [
    ({"loss": "bce"}, "output_activation must be 'sigmoid'"),
    ({"loss_reduction": "total"}, "loss_reduction"),
    ({"optimizer": "rmsprop", "rmsprop_alpha": 1.0}, "rmsprop_alpha"),
    ({"optimizer": "rmsprop", "rmsprop_eps": 0.0}, "rmsprop_eps"),
    ({"optimizer": "rmsprop", "momentum": 0.9}, "momentum"),
    ({"stop_train_error": -1.0}, "stop_train_error"),
    ({"input_scaling": "minmax"}, "input_scaling"),
    ({"stop_train_error": 100.0}, "stop_train_error"),
    ({"rule": "drtp", "loss_reduction": "sum"}, "drtp"),
])
def test_bad_recipe_options_are_refused(options, words):
    with pytest.raises(ConfigError, match=words):
        RunConfig(**{"rule": "fa", **options})


def test_new_options_at_their_defaults_keep_the_hash():
    cfg = RunConfig(rule="dfa", hidden=(800, 800))
    spelled = cfg.replace(loss_reduction="mean", rmsprop_alpha=0.99, rmsprop_eps=1e-8, stop_train_error=None,
                          input_scaling="standardise")
    assert spelled.hash() == cfg.hash()
    assert cfg.replace(stop_train_error=0.01).hash() != cfg.hash()
    assert cfg.replace(loss_reduction="sum").hash() != cfg.hash()
    # a config stored before these options existed reads back with the same hash
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("loss_reduction", "rmsprop_alpha", "rmsprop_eps",
                                                              "stop_train_error", "input_scaling")}
    assert RunConfig.from_dict(old).hash() == cfg.hash()


def test_cli_flags_for_the_recipe_options():
    import argparse

    parser = argparse.ArgumentParser()
    add_run_options(parser)
    args = parser.parse_args(["--loss", "bce", "--output-activation", "sigmoid", "--loss-reduction", "sum",
                              "--optimizer", "rmsprop", "--rmsprop-alpha", "0.9", "--rmsprop-eps", "1e-6",
                              "--stop-train-error", "0.01"])
    cfg = RunConfig(**run_options(args))
    assert (cfg.loss, cfg.loss_reduction, cfg.optimizer, cfg.rmsprop_alpha, cfg.rmsprop_eps, cfg.stop_train_error) == (
        "bce", "sum", "rmsprop", 0.9, 1e-6, 0.01)
    assert run_options(parser.parse_args(["--stop-train-error", "none"]))["stop_train_error"] is None


def test_the_nokland_preset_is_the_authors_recipe():
    preset = presets.load("nokland2016_dfa")
    configs = preset.spec().configs()
    assert {c.rule for c in configs} == {"dfa"} and {c.seed for c in configs} == {0, 1, 2}
    cfg = configs[0]
    assert cfg.hidden == (800, 800) and cfg.activation == "tanh" and cfg.output_activation == "sigmoid"
    assert (cfg.loss, cfg.loss_reduction, cfg.optimizer, cfg.lr, cfg.batch_size) == ("bce", "sum", "rmsprop", 1e-4, 64)
    assert (cfg.rmsprop_alpha, cfg.rmsprop_eps, cfg.momentum, cfg.weight_decay) == (0.99, 1e-8, 0.0, 0.0)
    assert cfg.init == "zero" and cfg.feedback_init == "fixed" and cfg.feedback_distribution == "uniform"
    assert cfg.feedback_scale == pytest.approx(1 / np.sqrt(800), rel=1e-5)
    assert (cfg.input_dropout, cfg.dropout, cfg.input_scaling) == (0.1, 0.5, "unit")
    assert cfg.epochs <= 299 and cfg.stop_train_error == 0.01 and cfg.validation == 0 and cfg.patience is None
    assert preset.published["metric"] == "final" and preset.published_errors == {"dfa": 1.45}
    quick = preset.spec(quick=True).configs()
    assert len(quick) <= 2 and all(c.epochs * (c.train_subset or 60000) <= 30000 for c in quick)
    old = presets.load("nokland2016_dfa_adam")
    assert old.spec().configs()[0].optimizer == "adam" and old.published_errors == {"dfa": 1.45}


def test_zero_forward_weights_and_fixed_feedback_scale_are_what_the_model_holds(tiny_data):
    cfg = presets.load("nokland2016_dfa").spec(quick=True).configs()[0].replace(hidden=(30, 20))
    sim = Simulation(cfg, data=tiny_data, progress=False)
    assert all(not W.any() for W in sim.model.weights)
    for D in sim.model.state["D"].values():
        assert np.abs(D).max() <= np.float32(0.0353553) and np.abs(D).max() > 0.03


def test_unit_input_scaling_feeds_pixels_over_255_to_training_probe_and_evaluation(tiny_data):
    cfg = RunConfig(rule="dfa", **{**BASE, "epochs": 1, "input_scaling": "unit"})
    sim = Simulation(cfg, data=tiny_data, progress=False)
    assert sim.probe.x.min() >= 0.0 and sim.probe.x.max() <= 1.0 and sim.probe.x.max() == np.float32(1.0)
    sim.run()
    images, labels = tiny_data.test_images, tiny_data.test_labels
    from_uint8 = sim.evaluate(images, labels)
    from_floats = sim.evaluate((images / 255.0).astype(np.float32), labels)  # floats are taken as already scaled
    assert from_uint8["accuracy"] == from_floats["accuracy"]
    assert from_uint8["loss"] == pytest.approx(from_floats["loss"], rel=1e-5)
    standard = Simulation(cfg.replace(input_scaling="standardise"), data=tiny_data, progress=False).run()
    assert not np.array_equal(standard.model.weights[0], sim.model.weights[0])


@pytest.mark.mnist
@pytest.mark.slow
def test_the_quick_nokland_preset_learns_mnist(mnist):
    cfg = presets.load("nokland2016_dfa").spec(quick=True).configs()[0]
    ds = Simulation(cfg, data=mnist, progress=False).run().results
    error = 100 * (1 - float(ds["test_accuracy"].dropna("step").values[-1]))
    assert ds.attrs["status"] == "ok" and error < 30.0, f"test error {error:.2f} % (chance: 90 %)"


# -- init_above_first: Nøkland's FA starts from a random first layer and zeros above it ----------------------------

TORCH_DEFAULT = dict(init="lecun", init_distribution="uniform", init_scale=1 / np.sqrt(3))  # U[+-1/sqrt(fan_in)]


def test_init_above_first_zero_keeps_the_first_layer_and_zeroes_the_rest(tiny_data):
    cfg = RunConfig(rule="fa", **{**BASE, **TORCH_DEFAULT, "epochs": 1})
    plain = Simulation(cfg, data=tiny_data, progress=False)
    zeroed = Simulation(cfg.replace(init_above_first="zero"), data=tiny_data, progress=False)
    first = zeroed.model.weights[0]
    # the first layer is drawn from the same stream as without the option, within torch's default bound
    np.testing.assert_array_equal(first, plain.model.weights[0])
    assert 0.9 / np.sqrt(784) < np.abs(first).max() <= np.float32(1 / np.sqrt(784))
    assert all(not W.any() for W in zeroed.model.weights[1:]) and all(W.any() for W in plain.model.weights[1:])
    # FA's fixed feedback still carries the error down, so every layer learns from zero
    zeroed.run()
    assert all(W.any() for W in zeroed.model.weights[1:])
    assert not np.array_equal(zeroed.model.weights[0], plain.model.weights[0])


def test_init_above_first_with_a_scale_rule_draws_every_layer_above_from_it(tiny_data):
    cfg = RunConfig(rule="bp", **{**BASE, "init": "zero", "init_above_first": "fixed", "init_scale": 0.25})
    weights = Simulation(cfg, data=tiny_data, progress=False).model.weights
    assert not weights[0].any()
    assert all(0.2 < np.abs(W).max() <= 0.25 for W in weights[1:])


def test_init_above_first_keeps_old_hashes_and_is_a_cli_flag():
    import argparse

    cfg = RunConfig(rule="fa", hidden=(800, 800))
    assert cfg.replace(init_above_first="same").hash() == cfg.hash()
    assert cfg.replace(init_above_first="zero").hash() != cfg.hash()
    old = {k: v for k, v in cfg.to_dict().items() if k != "init_above_first"}
    assert RunConfig.from_dict(old).hash() == cfg.hash()
    parser = argparse.ArgumentParser()
    add_run_options(parser)
    assert run_options(parser.parse_args(["--init-above-first", "zero"]))["init_above_first"] == "zero"
    with pytest.raises(ConfigError, match="init_above_first 'zeros' is not valid.*same, xavier"):
        RunConfig(rule="fa", init_above_first="zeros")


def test_a_hand_built_network_and_init_above_first_agree_or_are_refused(tiny_data):
    from cortex_fa.init import Init

    first, above = Init("lecun", "uniform", 0.5), Init("zero", "uniform", 0.5)
    net = Network.mlp([24, 16], init=first, init_above_first=above)
    sim = Simulation(net, RunConfig(rule="fa", epochs=1, batch_size=50), data=tiny_data, progress=False)
    assert (sim.config.init, sim.config.init_above_first, sim.config.init_scale) == ("lecun", "zero", 0.5)
    assert Network.from_config(sim.config) == net  # the results file describes what was trained
    with pytest.raises(ConfigError, match="init_above_first 'zero' contradicts the network .'same'."):
        Simulation(Network.mlp([24, 16]), RunConfig(rule="fa", init_above_first="zero"), data=tiny_data,
                   progress=False)


@pytest.mark.parametrize("name, hidden, bound", [("nokland2016_table1_800", [(800,) * d for d in (1, 2, 3, 4)], 800),
                                                 ("nokland2016_table1_240", [(240,) * 7], 240)])
def test_the_table1_presets_start_each_rule_as_the_authors_code_does(name, hidden, bound):
    preset = presets.load(name)
    configs = preset.spec().configs()
    assert sorted({c.hidden for c in configs}) == sorted(hidden) and {c.seed for c in configs} == {0, 1, 2}
    assert not preset.published_errors  # the table could not be read: no number is written beside the runs
    by_rule = {c.rule: c for c in configs}
    assert set(by_rule) == {"bp", "fa", "dfa"}
    torch_bound = lambda c: np.sqrt(3) * c.init_scale  # noqa: E731  lecun's bound sqrt(3/n_in) times the scale
    assert by_rule["bp"].init == "lecun" and torch_bound(by_rule["bp"]) == pytest.approx(1.0, rel=1e-5)
    assert by_rule["bp"].init_above_first == "same"
    fa = by_rule["fa"]
    assert (fa.init, fa.init_above_first) == ("lecun", "zero") and torch_bound(fa) == pytest.approx(1.0, rel=1e-5)
    assert by_rule["dfa"].init == "zero"
    for c in configs:
        assert (c.feedback_init, c.feedback_distribution) == ("fixed", "uniform")
        assert c.feedback_scale == pytest.approx(1 / np.sqrt(bound), rel=1e-5)
        assert (c.loss, c.loss_reduction, c.optimizer, c.lr, c.batch_size) == ("bce", "sum", "rmsprop", 1e-4, 64)
        assert (c.dropout, c.input_dropout, c.input_scaling, c.validation) == (0.0, 0.0, "unit", 0)
        assert c.epochs == 299 and c.stop_train_error == 0.01


@pytest.mark.mnist
@pytest.mark.slow
def test_fa_from_a_random_first_layer_and_zeros_above_learns_mnist(mnist):
    """The Table 1 recipe's fa (quick shape, 2 x 64): every layer above the first starts at zero and learns."""
    cfg = next(c for c in presets.load("nokland2016_table1_800").spec(quick=True).configs()
               if c.rule == "fa" and len(c.hidden) == 2)
    sim = Simulation(cfg, data=mnist, progress=False)
    assert all(not W.any() for W in sim.model.weights[1:]) and sim.model.weights[0].any()
    ds = sim.run().results
    error = 100 * (1 - float(ds["test_accuracy"].dropna("step").values[-1]))
    assert ds.attrs["status"] == "ok" and error < 30.0, f"test error {error:.2f} % (chance: 90 %)"
    assert all(W.any() for W in sim.model.weights[1:])
