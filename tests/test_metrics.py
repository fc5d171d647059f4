"""The probe's fast metrics against their definitions, computed the slow way in float64."""

from __future__ import annotations

import numpy as np
import pytest

from cortex_fa import kernels, metrics
from test_rules import batch, small_model

RULES = ["bp", "fa", "usf", "frsf", "brsf", "kp", "dfa", "drtp", "shallow"]


def reference_metrics(model, cfg, x, y):
    """DESIGN.md's definitions, literally: float64 dW = h^T delta, angles of flattened arrays."""
    pre, post = kernels.forward(x, model.weights, model.biases, model.activations)
    _, e = kernels.loss_and_error(pre[-1], post[-1], y, cfg.loss, model.activations[-1])
    bp = kernels.layerwise_deltas(e, lambda l: model.weights[l - 1].T, pre, post, model.activations)
    ours = kernels.rule_deltas(model.rule, model.weights, model.state, e, y, pre, post, model.activations)
    out = {k: [] for k in ("delta_alignment", "update_alignment", "delta_norm", "grad_norm")}
    for h, d_rule, d_bp in zip(post, ours, bp):
        h, d_rule, d_bp = (np.asarray(a, np.float64) for a in (h, d_rule, d_bp))
        dw_rule, dw_bp = h.T @ d_rule, h.T @ d_bp
        out["delta_alignment"].append(_angle(d_rule, d_bp))
        out["update_alignment"].append(_angle(dw_rule, dw_bp))
        out["delta_norm"].append(np.sqrt(np.mean(d_rule**2)))
        out["grad_norm"].append(np.linalg.norm(dw_rule))
    return {k: np.array(v) for k, v in out.items()}


def _angle(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return np.nan
    return np.degrees(np.arccos(np.clip(np.sum(a * b) / (na * nb), -1, 1)))


@pytest.mark.parametrize("n_probe", [40, 800])  # below and above the 784 pixels (QR shortcut on / off)
@pytest.mark.parametrize("rule", RULES)
def test_probe_matches_the_definitions(rule, n_probe):
    cfg, model = small_model(rule, hidden=(24, 16), dtype=np.float32)
    x, y = batch(n=n_probe, dtype=np.float32)
    got = metrics.Probe(x, y, cfg.loss).evaluate(model.rule, model.weights, model.biases, model.activations,
                                                 model.state)
    want = reference_metrics(model, cfg, x, y)
    for name in ("delta_alignment", "update_alignment"):
        # float32 deltas and updates: angles within a thousandth of a degree
        np.testing.assert_allclose(got[name], want[name], atol=1e-3, err_msg=name)
    for name in ("delta_norm", "grad_norm"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, err_msg=name)
    if rule == "bp":
        assert (got["update_alignment"] == 0).all() and (got["delta_alignment"] == 0).all()


def test_fa_with_transposed_feedback_measures_zero():
    """B = W^T: every angle is 0 up to float32 rounding of the deltas (no error of the shortcut)."""
    cfg, model = small_model("fa", hidden=(24, 16), dtype=np.float32)
    for l in model.state["B"]:
        model.state["B"][l] = model.weights[l - 1].T.copy()
    x, y = batch(n=64, dtype=np.float32)
    got = metrics.probe_metrics(model.rule, model.weights, model.biases, model.activations, model.state, x, y,
                                cfg.loss)
    for name in ("delta_alignment", "update_alignment"):
        assert np.all(np.abs(got[name]) < 1e-4), (name, got[name])
    np.testing.assert_array_equal(got["weight_alignment"][1:], 0.0)


def test_probe_reuses_its_buffers_without_changing_results():
    cfg, model = small_model("usf", hidden=(24, 16), dtype=np.float32)
    x, y = batch(n=50, dtype=np.float32)
    probe = metrics.Probe(x, y, cfg.loss)
    args = (model.rule, model.weights, model.biases, model.activations, model.state)
    first = probe.evaluate(*args)
    model.train_batch(x, y, y.argmax(1), 0.1)
    second = probe.evaluate(*args)
    fresh = metrics.Probe(x, y, cfg.loss).evaluate(*args)
    for name in first:
        np.testing.assert_array_equal(second[name], fresh[name])
    assert not np.allclose(first["grad_norm"], second["grad_norm"])  # the weights did change


def test_float64_networks_and_float64_accumulation():
    cfg, model = small_model("fa", hidden=(24, 16), dtype=np.float64)
    x, y = batch(n=40, dtype=np.float64)
    got = metrics.probe_metrics(model.rule, model.weights, model.biases, model.activations, model.state, x, y,
                                cfg.loss)
    want = reference_metrics(model, cfg, x, y)
    np.testing.assert_allclose(got["update_alignment"], want["update_alignment"], atol=1e-9)
    # the dot products accumulate in float64 even for float32 arrays
    a = np.full(1_000_001, 1 + 2**-12, np.float32)
    assert metrics._dot64(a, None) == pytest.approx(1_000_001 * (1 + 2**-12) ** 2, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_triangular_product_is_the_matrix_product(dtype):
    rng = np.random.default_rng(0)
    r = np.triu(rng.normal(size=(30, 30))).astype(dtype)
    d = rng.normal(size=(30, 7)).astype(dtype)
    out = metrics._upper_times(r, d, np.empty_like(d))
    np.testing.assert_allclose(out, r @ d, rtol=1e-5 if dtype == np.float32 else 1e-12)
