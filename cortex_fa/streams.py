"""Independent random streams, one per purpose, spawned from a run's seed.

A run draws from several generators, never from one shared stream, so that
what one rule draws cannot shift what another sees. For one seed every rule
at the same hidden sizes gets the same training subset, data order, probe
batch and initial forward weights: seeds pair across rules, and a paired
difference between two rules is a difference of rules, not of luck.

Each stream is ``Generator(PCG64(SeedSequence(seed, spawn_key=(key,))))``
with a fixed key per purpose (not ``SeedSequence.spawn``, whose children
depend on how many came before): a purpose added later shifts no other
stream. The synapse-snapshot sample has had such a stream of its own since
0.3 (:func:`cortex_fa.snapshots.sample_generator`).
"""

from __future__ import annotations

import json

import numpy as np

# The scheme's name, stored in every results file as attrs["random_streams"].
SCHEME = "per-purpose-v1"
# purpose -> spawn key. Never renumber: the keys *are* the streams.
KEYS = {
    "data": 1,      # training subset and one permutation per epoch
    "forward": 2,   # initial forward weights W
    "feedback": 3,  # feedback synapses: B, D, |R| and brSF's redraws
    "dropout": 4,   # dropout masks
    "probe": 5,     # the fixed probe batch of the alignment metrics
}
DESCRIPTION = (f"{SCHEME}: numpy SeedSequence(seed, spawn_key=(k,)) per purpose: "
               + ", ".join(f"{name}={key}" for name, key in KEYS.items())
               + "; snapshot sample 0x5A4B")


class RandomStreams:
    """Named :class:`numpy.random.Generator` objects, one per purpose.

    Parameters
    ----------
    seed : int
        The run's seed (``RunConfig.seed``).

    Examples
    --------
    >>> s = RandomStreams(0)
    >>> a = s.forward.random(); b = RandomStreams(0).forward.random()
    >>> a == b
    True
    """

    def __init__(self, seed: int):
        self.seed = int(seed)
        for name, key in KEYS.items():
            setattr(self, name, np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(key,)))))

    @classmethod
    def shared(cls, rng: np.random.Generator) -> "RandomStreams":
        """Every purpose drawing from the one generator ``rng`` (the scheme before 0.4).

        Backends accept a plain Generator this way, so scripts that compile a
        model by hand with ``np.random.default_rng(seed)`` keep working.
        """
        self = cls.__new__(cls)
        self.seed = None
        for name in KEYS:
            setattr(self, name, rng)
        return self

    @classmethod
    def coerce(cls, rng_or_streams) -> "RandomStreams":
        """A :class:`RandomStreams` from itself or from one Generator (see :meth:`shared`)."""
        if isinstance(rng_or_streams, RandomStreams):
            return rng_or_streams
        if isinstance(rng_or_streams, np.random.Generator):
            return cls.shared(rng_or_streams)
        raise TypeError(f"expected RandomStreams or numpy.random.Generator, got {type(rng_or_streams).__name__}")

    # -- checkpoints ------------------------------------------------------------
    def state(self) -> str:
        """Every stream's ``bit_generator.state`` as one JSON text (for a checkpoint attribute)."""
        return json.dumps({name: getattr(self, name).bit_generator.state for name in KEYS}, sort_keys=True)

    def set_state(self, text: str) -> None:
        """Put every stream back where :meth:`state` found it."""
        states = json.loads(text)
        missing = sorted(set(KEYS) - set(states))
        if missing:
            raise ValueError(f"random stream state lacks {', '.join(missing)}")
        for name in KEYS:
            getattr(self, name).bit_generator.state = states[name]
