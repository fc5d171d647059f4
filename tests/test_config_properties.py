"""Property tests of config parsing: any input gives a config or a ConfigError, nothing else."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_fa.config import RunConfig
from cortex_fa.errors import ConfigError

FIELDS = [f.name for f in dataclasses.fields(RunConfig)]

values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(-5, 3000), max_size=4), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
keys = st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=15))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(keys, values, max_size=5))
def test_any_mapping_gives_config_or_config_error(mapping):
    try:
        cfg = RunConfig.from_dict(mapping)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message
        return
    # a config that was accepted is valid and survives a JSON round trip
    assert all(s > 0 for s in cfg.hidden)
    assert cfg.lr > 0 and math.isfinite(cfg.lr)
    assert RunConfig.from_json(cfg.to_json()) == cfg
    assert RunConfig.from_json(cfg.to_json()).hash() == cfg.hash()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 2000), min_size=1, max_size=7), st.sampled_from(["bp", "fa", "usf", "dfa", "kp"]),
       st.floats(1e-5, 1.0), st.integers(0, 2**31))
def test_valid_configs_hash_distinctly(hidden, rule, lr, seed):
    a = RunConfig(rule=rule, hidden=tuple(hidden), lr=lr, seed=seed)
    b = a.replace(seed=seed + 1)
    assert a.hash() != b.hash()
    assert a.replace() == a


def test_unknown_key_suggests_the_closest():
    try:
        RunConfig.from_dict({"batchsize": 10})
    except ConfigError as exc:
        assert "did you mean 'batch_size'" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("unknown key accepted")
