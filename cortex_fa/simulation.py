"""The Simulation: a network of columns, compiled, trained, stored and resumed.

Data flow runs one way: a *description* (:class:`~cortex_fa.network.Network`
of columns and projections, from :meth:`Network.mlp` or composed by hand)
plus *settings* (:class:`~cortex_fa.config.RunConfig`) go into a
:class:`Simulation`, which owns the compiled model, the optimiser state, the
random streams (:mod:`cortex_fa.streams`), the recorder and the callbacks,
and gives back *results* (an xarray Dataset), *weights* (another) and
*checkpoints* (NetCDF files, :mod:`cortex_fa.checkpoint`)::

    sim = cfa.Simulation(cfa.Network.mlp([240] * 3), cfa.RunConfig(rule="fa", epochs=2))
    sim.run(epochs=1)          # and again: training goes on
    sim.store("fa.ckpt.nc")    # everything run() needs to continue bit for bit
    sim = cfa.Simulation.restore("fa.ckpt.nc")
    sim.run()                  # on to config.epochs

Every batch is one update of every column (see the backends); metrics are
computed at logged steps only, on the probe batch, with the training clock
(``wall_time``) stopped. Ctrl-C ends a run at the next batch boundary and
leaves the simulation usable (status ``interrupted``; the handler is
:func:`cortex_fa.epoch.sigint_stops`). How a run ended and its results
Dataset are worked out in :mod:`cortex_fa.outcome`.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from cortex_fa import backends, checkpoint, kernels, learned, metrics, outcome, rules, snapshots
from cortex_fa.callbacks import EarlyStopping, TrainErrorTarget, as_callbacks
from cortex_fa.config import RunConfig
from cortex_fa.epoch import Epoch, next_block, progress_bar, sigint_stops
from cortex_fa.network import Network
from cortex_fa.reconcile import reconcile
from cortex_fa.outcome import STALLED_ACCURACY  # noqa: F401 - re-exported
from cortex_fa.results import RunRecorder
from cortex_fa.schedule import DIVERGED_FACTOR, chance_loss, is_logged, plateau_drops, validation_split
from cortex_fa.streams import DESCRIPTION, RandomStreams



class Simulation:
    """A compiled network with its training state.

    Parameters
    ----------
    network : Network, optional
        What to simulate; default ``Network.from_config(config)``. Fields of
        ``config`` that describe the network's shape are checked against it
        (:func:`cortex_fa.reconcile.reconcile`).
    config : RunConfig, optional
        How to train it (rule, optimiser, budget, logging, seed).
    data : MNIST, optional
        Preloaded data (``cortex_fa.data.load_mnist()``); loaded if omitted.
    progress : bool
        A progress bar per epoch (on a terminal; tqdm's widget in Jupyter;
        nothing in pipes and CI logs).

    Attributes
    ----------
    step, epoch : int
        Updates done; whole epochs done.
    status : str
        ``ok``, ``diverged`` or ``interrupted``.
    stop_reason : str or None
        Why the last ``run`` ended early (``early_stop``, ``train_error_target``,
        ``diverged``, ``interrupted``, or what a callback passed to :meth:`stop`).
    validation_history : list of float
        Validation accuracy at every epoch end (with ``config.validation``).
    """

    def __init__(self, network: Network | None = None, config: RunConfig | None = None, *, data=None,
                 progress: bool = True):
        if isinstance(network, RunConfig) and config is None:
            network, config = None, network
        config = RunConfig() if config is None else config
        if network is None:
            network = Network.from_config(config)
        else:
            config = reconcile(network, config)
        if data is None:
            from cortex_fa.data import load_mnist

            data = load_mnist(progress=progress)
        self.network, self.config, self.data, self.progress = network, config, data, progress
        self.streams = RandomStreams(config.seed)
        pool, self.validation_index = validation_split(len(data.train_labels), config.validation)
        subset = config.train_subset
        self.train_index = pool if subset is None else np.sort(
            self.streams.data.permutation(len(pool))[: min(subset, len(pool))])
        probe_idx = self.streams.probe.choice(self.train_index, size=min(config.probe_size, len(self.train_index)),
                                              replace=False)
        self.probe = metrics.Probe(kernels.normalise(data.train_images[probe_idx], config.input_scaling),
                                   kernels.one_hot(data.train_labels[probe_idx]), config.loss)
        self.rule = rules.for_network(network, config.rule, config.rule_params)
        self.model = backends.get(config.backend).compile(network, self.rule, config, self.streams)
        # W(0), for what learning wrote (cortex_fa.learned); kept in checkpoints
        self.initial_weights = [np.array(W, copy=True) for W in self.model.weights]
        self.steps_per_epoch = -(-len(self.train_index) // config.batch_size)
        self.recorder = RunRecorder(config, network.n_layers, self.steps_per_epoch, data, backend=self.model.backend)
        self.recorder.extra_attrs.update(getattr(self.model, "attrs", {}), random_streams=DESCRIPTION)
        if network.column_rules is not None:
            self.recorder.extra_attrs["column_rules"] = ",".join(self.rule.owner[l] for l in sorted(self.rule.owner))
        self.snapshots = None
        if config.snapshots:
            logged = [s for s in range(self.steps_per_epoch * config.epochs + 1) if self._logged(s)]
            self.snapshots = snapshots.SnapshotRecorder(
                network.sizes, self.rule.pathway, config.snapshots, config.seed,
                snapshots.snapshot_steps(self.steps_per_epoch, config.epochs, logged))
        self.step, self.clock = 0, 0.0
        self.status, self.stop_reason, self.diverged_at = "ok", None, None
        self.validation_history: list[float] = []
        self.resumed_at: list[int] = []  # steps at which this run was restored from a checkpoint
        self.current = None  # the Epoch in progress (order, position, running sums), None between epochs
        self.last_epoch = None  # the Epoch that ended last (its running sums; read by TrainErrorTarget)
        self._stop_request = None

    # -- the run -------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch if self.current is None else self.current.number

    def stop(self, reason: str = "stopped by a callback") -> None:
        """End the current :meth:`run` at the next batch boundary (for callbacks)."""
        self._stop_request = reason

    def run(self, epochs: int | None = None, *, callbacks=(), on_log=None) -> "Simulation":
        """Train on, and return ``self``.

        Parameters
        ----------
        epochs : int, optional
            Epochs to train from here (an epoch in progress counts as one).
            Default: on to ``config.epochs``; nothing if the run already
            reached it, stopped early or diverged.
        callbacks : sequence
            Objects with ``on_log(sim)`` and/or ``on_epoch_end(sim)`` (see
            :mod:`cortex_fa.callbacks`); early stopping is added when
            ``config.patience`` is set.
        on_log : callable, optional
            ``on_log(recorder)`` after every logged step (kept from 0.3).
        """
        cfg = self.config
        if self.status == "diverged":
            return self
        if epochs is None:
            if self.stop_reason in ("early_stop", "train_error_target"):
                return self
            target = cfg.epochs
        else:
            if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
                raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
            target = self.epoch + epochs
        hooks = ([EarlyStopping(cfg.patience)] if cfg.patience is not None else []) + (
            [TrainErrorTarget(cfg.stop_train_error)] if cfg.stop_train_error is not None else []) + as_callbacks(
            callbacks, on_log)
        self.status, self.stop_reason, self._stop_request = "ok", None, None
        if self.step == 0 and not self.recorder.steps:
            # no test pass at step 0: it would only confirm chance accuracy (~8 % of an epoch's cost)
            self._log(0, test=False, hooks=hooks)
        with sigint_stops(self):
            while self.epoch < target or self.current is not None:
                if self.current is None:
                    self.current = Epoch(self.epoch, self.train_index[self.streams.data.permutation(len(self.train_index))],
                                         lr_drops=self.lr_drops)
                if not self._train_epoch(hooks):
                    break
        return self

    def _train_epoch(self, hooks) -> bool:
        """Train the rest of the current epoch; False if the run must end here."""
        cfg, model, data, ep = self.config, self.model, self.data, self.current
        bs, spe, total = cfg.batch_size, self.steps_per_epoch, self.steps_per_epoch * cfg.epochs
        diverged_loss = DIVERGED_FACTOR * chance_loss(cfg.loss)
        blocks = hasattr(model, "train_block")  # models that run many presentations per call
        bar = progress_bar(self.progress, spe, f"{self.rule_label} epoch {ep.number + 1}/{max(cfg.epochs, ep.number + 1)}",
                           initial=ep.position // bs)
        pending = deque()  # (loss_sum, correct) of batches a block already trained
        try:
            while ep.position < len(ep.order):
                if self._stop_request is not None and not pending:
                    self.stop_reason = self._stop_request
                    self.status = "interrupted" if self.stop_reason == "interrupted" else "ok"
                    return False
                start = ep.position
                idx = ep.order[start:start + bs]
                t0 = time.perf_counter()
                lr = ep.learning_rate(cfg, self.step, total)
                if not pending and blocks:
                    pending = next_block(model, data, ep, bs, self.step, spe, self._logged, cfg, total)
                if pending:
                    loss_sum, correct = pending.popleft()
                else:
                    x = kernels.normalise(data.train_images[idx], cfg.input_scaling)
                    labels = data.train_labels[idx]
                    loss_sum, correct = model.train_batch(x, kernels.one_hot(labels), labels, lr)
                self.clock += time.perf_counter() - t0
                self.step += 1
                ep.position = start + len(idx)
                if not np.isfinite(loss_sum) or loss_sum > diverged_loss * len(idx):
                    self.status = self.stop_reason = "diverged"
                    self.diverged_at = self.step
                    self.current = None
                    return False
                ep.add(loss_sum, correct, len(idx))
                if bar is not None:
                    bar.update(1)
                    if self.step % 50 == 0:
                        bar.set_postfix(loss=f"{ep.loss / ep.seen:.3f}", acc=f"{ep.correct / ep.seen:.3f}")
                if self.step % spe and self._logged(self.step):
                    self._log(self.step, test=False, hooks=hooks)
        finally:
            if bar is not None:
                bar.close()
        self.current, self.last_epoch = None, ep
        if self._logged(self.step) or len(self.validation_index):  # with a validation split every epoch end is logged
            self._log(self.step, test=True, hooks=hooks, running=ep)
        for cb in hooks:
            if hasattr(cb, "on_epoch_end"):
                cb.on_epoch_end(self)
        if self._stop_request is not None:
            self.stop_reason, self.status = self._stop_request, "interrupted" if self._stop_request == "interrupted" else "ok"
            return False
        return True

    def _logged(self, step: int) -> bool:
        cfg = self.config
        return is_logged(step, self.steps_per_epoch, cfg.epochs, log_early=cfg.log_early, log_every=cfg.log_every)

    def _log(self, step, *, test: bool, hooks, running=None):
        ep = running if running is not None else self.current
        seen = ep.seen if ep is not None else 0
        row = {"train_loss": ep.loss / seen if seen else np.nan, "train_accuracy": ep.correct / seen if seen else np.nan}
        model, data = self.model, self.data
        if test:
            row["test_loss"], row["test_accuracy"] = model.evaluate(data.test_images, data.test_labels)
            if len(self.validation_index):
                n = self.validation_index[0]  # the split is the file's tail: views, no copy
                row["validation_loss"], row["validation_accuracy"] = model.evaluate(data.train_images[n:],
                                                                                    data.train_labels[n:])
                self.validation_history.append(row["validation_accuracy"])
        if self.config.metrics and self._logged(step):
            row.update(self.probe.evaluate(self.rule, model.weights, model.biases, model.activations, model.state))
            row.update(learned.metrics(self.rule, model.weights, self.initial_weights, model.state))
        if self.snapshots is not None and step in self.snapshots.steps:
            self.snapshots.take(step, self.rule, model.weights, model.state)
        self.recorder.add(step, self.clock, row)
        for cb in hooks:  # outside the clock: live writing is not training time
            if hasattr(cb, "on_log"):
                cb.on_log(self)

    @property
    def lr_drops(self) -> int:
        """Cuts of the rate so far under ``lr_schedule="plateau"`` (0 under any other schedule)."""
        if self.config.lr_schedule != "plateau":
            return 0
        return plateau_drops(self.validation_history, self.config.lr_patience)

    # -- what a user reads ------------------------------------------------------
    @property
    def rule_label(self) -> str:
        return self.recorder.extra_attrs.get("column_rules", self.config.rule)

    @property
    def results(self) -> "xarray.Dataset":  # noqa: F821
        """The run's results so far (dims ``step``, ``layer``; the schema of :mod:`cortex_fa.results`)."""
        return outcome.results_dataset(self)

    def end_reason(self) -> str:
        """Why training ended (or has not): ``early_stop``, ``epoch_cap``, ``diverged``,
        ``stalled_at_chance`` (ended with a best validation accuracy, else a last test
        accuracy, under :data:`STALLED_ACCURACY`), ``interrupted``, ``running``, or a callback's reason."""
        return outcome.end_reason(self)

    @property
    def weights(self) -> "xarray.Dataset":  # noqa: F821
        """Every projection's current matrix and every column's bias, as an xarray Dataset.

        One variable per projection, named ``<source>_to_<target>``
        (``input_to_column1``, ..., ``column2_to_column1`` for feedback), with
        dims named after the populations (``input``, ``column1``, ...); biases
        are ``<column>_bias``. Copies: training on does not change them.
        """
        return checkpoint.weights_dataset(self)

    def evaluate(self, images, labels) -> dict:
        """Mean loss and accuracy on ``images`` (uint8 pixels 0-255, or floats already normalised).

        Returns ``{"loss": float, "accuracy": float}``.
        """
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 2 or images.shape[1] != self.network.input_size or len(images) != len(labels):
            raise ValueError(f"images must be (n, {self.network.input_size}) with one label each; "
                             f"got {images.shape} and {labels.shape}")
        if images.dtype == np.uint8:
            loss, acc = self.model.evaluate(images, labels)
        else:
            a, h = self.model.outputs(images.astype(self.model.weights[0].dtype, copy=False))
            loss, _ = kernels.loss_and_error(a, h, kernels.one_hot(labels), self.config.loss, self.model.activations[-1])
            acc = float(np.mean(np.argmax(a if self.config.loss == "cross_entropy" else h, axis=1) == labels))
        return {"loss": float(loss), "accuracy": float(acc)}

    # -- checkpoints -----------------------------------------------------------
    def store(self, path):
        """Write everything :meth:`run` needs to continue bit for bit to a NetCDF checkpoint (atomically)."""
        return checkpoint.store(self, path)

    @classmethod
    def restore(cls, path, *, data=None, progress: bool = True) -> "Simulation":
        """A simulation continued from a checkpoint written by :meth:`store`."""
        ds = checkpoint.load(path)
        sim = cls(Network.from_dict(checkpoint.network_of(ds)), checkpoint.config_of(ds), data=data, progress=progress)
        checkpoint.apply(sim, ds)
        sim.resumed_at.append(sim.step)
        return sim

