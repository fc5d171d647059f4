"""``train(config)``: the one-liner, a :class:`~cortex_fa.simulation.Simulation` run to its end.

The loop itself, shared by every rule and backend, lives in
:mod:`cortex_fa.simulation`; its small helpers (logging schedule,
validation split, early stopping) in :mod:`cortex_fa.schedule`, re-exported
here.
"""

from __future__ import annotations

from cortex_fa.config import RunConfig
from cortex_fa.schedule import (  # noqa: F401 - the loop's helpers, public here since 0.2
    DIVERGED_FACTOR,
    best_epoch,
    chance_loss,
    logging_steps,
    validation_split,
)
from cortex_fa.simulation import Simulation


def train(config: RunConfig | None = None, data=None, *, progress: bool = True, on_log=None, callbacks=(),
          network=None, **overrides):
    """Train one network and return its results as an ``xarray.Dataset``.

    ``train(config)`` is ``Simulation(network, config).run().results``.

    Parameters
    ----------
    config : RunConfig, optional
        The run; keyword ``overrides`` replace its fields (``train(rule="bp")``).
    data : MNIST, optional
        Preloaded data (``cortex_fa.data.load_mnist()``); loaded if omitted.
    progress : bool
        Show a progress bar per epoch (on a terminal or in Jupyter).
    on_log : callable, optional
        Called as ``on_log(recorder)`` after every logged step, with the
        :class:`~cortex_fa.results.RunRecorder` so far (e.g. a
        :class:`cortex_fa.live.PartialWriter`).
    callbacks : sequence, optional
        See :mod:`cortex_fa.callbacks`.
    network : Network, optional
        A network composed by hand (default: the one ``config`` describes).

    Returns
    -------
    xarray.Dataset
        Dims ``step`` and ``layer``; see :mod:`cortex_fa.results` for the schema.
        ``attrs["status"]`` is ``"diverged"`` if the loss became NaN/inf, in
        which case the metrics logged until then are kept.
    """
    if config is None:
        config = RunConfig(**overrides)
    elif overrides:
        config = config.replace(**overrides)
    config.check_rule()  # a config read from a file may name a rule that is not installed here
    sim = Simulation(network, config, data=data, progress=progress)
    return sim.run(callbacks=callbacks, on_log=on_log).results
