"""A new learning rule in about 30 lines: sparse feedback alignment.

Lillicrap et al. (2016) found that FA still learns when half of the feedback
synapses are removed. This example writes that rule, registers it with
``cortex_fa.rules.register`` and trains it next to plain FA.

    python examples/custom_rule.py          # 10,000 training images, 2 epochs
    python examples/custom_rule.py --full   # all 60,000 images, 5 epochs
"""

from __future__ import annotations

import argparse

import numpy as np

import cortex_fa as cfa
from cortex_fa.data import load_mnist
from cortex_fa.errors import ConfigError
from cortex_fa.rules import LearningRule, available, register


# --8<-- [start:rule]
@register
class SparseFeedbackAlignment(LearningRule):
    """FA through a sparse random B: a fraction ``sparsity`` of the synapses is absent.

    .. math:: B_l = \\frac{M_l \\odot R_l}{\\sqrt{1 - p}}, \\qquad M_{ij} \\sim \\mathrm{Bernoulli}(1 - p)
    """

    name = "sparse_fa"
    pathway = "layerwise"  # B_l carries delta_l down to column l - 1
    summary = "feedback alignment with a fraction of the feedback synapses removed"
    defaults = {"sparsity": 0.5}

    @classmethod
    def check_config(cls, config):
        p = cls(**config.rule_params).params["sparsity"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ConfigError(f"rule_params.sparsity must be in [0, 1), got {p!r}")

    def init_state(self, network, rng):
        keep = 1.0 - self.params["sparsity"]
        B = self.draw_feedback(network, rng)  # one fixed random matrix per layer, W's scale
        return {"B": {l: (b * (rng.random(b.shape) < keep) / np.sqrt(keep)).astype(b.dtype) for l, b in B.items()}}

    def feedback(self, weights, state, layer):
        return state["B"][layer]
# --8<-- [end:rule]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Register and train a custom rule (sparse FA).")
    parser.add_argument("--full", action="store_true", help="all 60,000 training images, 5 epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = load_mnist(progress=False)
    base = cfa.RunConfig(rule="fa", hidden=(240, 240), lr=0.05, epochs=5 if args.full else 2,
                         train_subset=None if args.full else 10_000, seed=args.seed)
    print(f"registered rules: {', '.join(available())}")
    print(f"{'rule':<10} {'sparsity':>8} {'test acc':>8}   weight alignment per layer (deg)   delta alignment L1 (deg)")
    for rule, params in (("fa", {}), ("sparse_fa", {"sparsity": 0.5}), ("sparse_fa", {"sparsity": 0.9})):
        ds = cfa.train(base.replace(rule=rule, rule_params=params), data, progress=False)
        last = ds.isel(step=-1)
        angles = " ".join(f"{v:5.1f}" if np.isfinite(v) else "    -" for v in last.weight_alignment.values)
        print(f"{rule:<10} {params.get('sparsity', 0.0):8.1f} {float(last.test_accuracy):8.4f}   {angles:<34} "
              f"{float(last.delta_alignment.sel(layer=1)):5.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
