"""Weight initialisers. Randomness always comes from an explicit Generator.

Scale rules give the standard deviation ``s`` of the entries:

- ``xavier`` (Glorot): :math:`s = \\sqrt{2 / (n_{in} + n_{out})}`
- ``he``: :math:`s = \\sqrt{2 / n_{in}}`
- ``lecun``: :math:`s = \\sqrt{1 / n_{in}}`
- ``fixed``: :math:`s` is ``scale`` itself (for uniform, ``scale`` is the bound)
- ``zero``: all zeros (Nøkland 2016 starts DFA's forward weights at zero)

For the first three, ``scale`` multiplies ``s``; a uniform distribution uses
the bound :math:`\\sqrt{3} s` so that the standard deviation is ``s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cortex_fa.errors import ConfigError

SCHEMES = ("xavier", "he", "lecun", "fixed", "zero")
DISTRIBUTIONS = ("uniform", "normal")


@dataclass(frozen=True)
class Init:
    """Description of an initialiser (plain data)."""

    scheme: str = "xavier"
    distribution: str = "uniform"
    scale: float = 1.0

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ConfigError(f"init scheme '{self.scheme}' is not valid; use one of {', '.join(SCHEMES)}")
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(f"init distribution '{self.distribution}' is not valid; use uniform or normal")
        if not np.isfinite(self.scale) or self.scale < 0:
            raise ConfigError(f"init scale must be a finite number >= 0, got {self.scale!r}")


def spread(init: Init, fan_in: int, fan_out: int) -> float:
    """Return the bound (uniform) or standard deviation (normal) of the entries."""
    if init.scheme == "zero":
        return 0.0
    if init.scheme == "fixed":
        return float(init.scale)
    std = {
        "xavier": np.sqrt(2.0 / (fan_in + fan_out)),
        "he": np.sqrt(2.0 / fan_in),
        "lecun": np.sqrt(1.0 / fan_in),
    }[init.scheme] * init.scale
    return float(std * np.sqrt(3.0)) if init.distribution == "uniform" else float(std)


def mean_magnitude(init: Init, fan_in: int, fan_out: int) -> float:
    """Expected ``|w|`` of one entry (used to give sign-only feedback a scale)."""
    s = spread(init, fan_in, fan_out)
    return s / 2.0 if init.distribution == "uniform" else s * np.sqrt(2.0 / np.pi)


def draw(init: Init, shape, fan_in: int, fan_out: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Draw a matrix of ``shape`` from ``init`` using ``rng``."""
    s = spread(init, fan_in, fan_out)
    if s == 0.0:
        return np.zeros(shape, dtype=dtype)
    if init.distribution == "uniform":
        values = rng.uniform(-s, s, size=shape)
    else:
        values = rng.normal(0.0, s, size=shape)
    return values.astype(dtype, copy=False)
