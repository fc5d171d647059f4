"""cortex_fa: cortical columns that learn without weight transport.

The public API::

    import cortex_fa as cfa
    cfg = cfa.RunConfig(rule="fa", hidden=(500,), epochs=1)
    ds = cfa.train(cfg)                 # xarray.Dataset, one run
    cfa.save_results(ds, "run.nc")
    ds = cfa.open_results("run.nc")     # also a directory or a glob of run files
"""

from __future__ import annotations

__version__ = "0.4.0.dev0"

from cortex_fa.config import RunConfig  # noqa: E402
from cortex_fa.errors import (  # noqa: E402
    BackendUnavailable,
    ConfigError,
    CortexFAError,
    DataError,
    ResultsError,
)

__all__ = [
    "__version__",
    "RunConfig",
    "CortexFAError",
    "ConfigError",
    "DataError",
    "ResultsError",
    "BackendUnavailable",
    "train",
    "save_results",
    "open_results",
    "Network",
    "Column",
    "Projection",
    "Simulation",
]


def __getattr__(name):
    # Lazy imports keep `import cortex_fa` (and the CLI's start-up) fast.
    if name == "train":
        from cortex_fa.training import train

        return train
    if name in ("save_results", "open_results"):
        from cortex_fa import results

        return getattr(results, name)
    if name == "Simulation":
        from cortex_fa.simulation import Simulation

        return Simulation
    if name in ("Network",):
        from cortex_fa.network import Network

        return Network
    if name in ("Column", "Projection"):
        from cortex_fa import column

        return getattr(column, name)
    raise AttributeError(f"module 'cortex_fa' has no attribute {name!r}")
