"""The one training loop shared by every rule and backend.

It draws everything random from one ``numpy.random.Generator`` seeded by
``config.seed``, in a fixed order: training subset, probe batch, weights,
feedback synapses, then one permutation per epoch (and rule redraws).
Metrics are computed at logging steps only, on a fixed probe batch, and the
clock that becomes ``wall_time`` is stopped while they are.

With ``config.validation = N`` the last ``N`` images of the training file are
held out (the same images for every seed and rule: the split draws nothing
from the generator), evaluated at every epoch end, and early stopping
(``config.patience``) watches their accuracy.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from cortex_fa import backends, kernels, metrics, optim, rules, snapshots
from cortex_fa.config import RunConfig
from cortex_fa.errors import ConfigError
from cortex_fa.network import Network
from cortex_fa.results import RunRecorder, annotate

# A mean batch loss this many times the chance-level loss (or NaN/inf) ends the
# run as diverged: a network that learns never comes near it, one that blew up
# rarely comes back (tanh units saturated at +-1 keep a finite but huge loss).
DIVERGED_FACTOR = 100.0


def chance_loss(loss: str, n_classes: int = 10) -> float:
    """Loss of an uninformed network: ln(n) for cross-entropy, 1/2 |y|^2 = 0.5 for MSE."""
    return float(np.log(n_classes)) if loss == "cross_entropy" else 0.5


def logging_steps(steps_per_epoch: int, epochs: int, *, log_early: bool = True, log_every: int = 1) -> list[int]:
    """Steps at which metrics are logged.

    Step 0 (before any update), ``1, 2, 4, 8, ...`` inside the first epoch if
    ``log_early``, the end of every ``log_every``-th epoch and the last step.
    """
    total = steps_per_epoch * epochs
    steps = {0, total}
    if log_early:
        k = 1
        while k < steps_per_epoch:
            steps.add(k)
            k *= 2
    steps.update(e * steps_per_epoch for e in range(log_every, epochs + 1, log_every))
    return sorted(steps)


def validation_split(n_train: int, validation: int) -> tuple[np.ndarray, np.ndarray]:
    """``(training pool, validation indices)``: the last ``validation`` images are held out.

    The split is a fixed cut of the training file, not a random draw, so it
    is identical for every seed and rule and consumes no randomness (runs
    without a split keep their exact random streams).
    """
    if validation >= n_train:
        raise ConfigError(f"validation {validation} leaves none of the {n_train} training images; use fewer")
    return np.arange(n_train - validation), np.arange(n_train - validation, n_train)


def best_epoch(accuracies, patience: int | None = None) -> tuple[int, bool]:
    """``(index of the best accuracy, whether early stopping ends here)``.

    The best is the first maximum (later ties are not improvements); the run
    stops once ``patience`` epochs have passed without a new best.
    """
    acc = np.asarray(accuracies, dtype=float)
    best = int(np.nanargmax(acc)) if np.isfinite(acc).any() else 0
    return best, patience is not None and len(acc) - 1 - best >= patience


def train(config: RunConfig | None = None, data=None, *, progress: bool = True, on_log=None, **overrides):
    """Train one network and return its results as an ``xarray.Dataset``.

    Parameters
    ----------
    config : RunConfig, optional
        The run; keyword ``overrides`` replace its fields (``train(rule="bp")``).
    data : MNIST, optional
        Preloaded data (``cortex_fa.data.load_mnist()``); loaded if omitted.
    progress : bool
        Show a progress bar per epoch (on stderr).
    on_log : callable, optional
        Called as ``on_log(recorder)`` after every logged step, with the
        :class:`~cortex_fa.results.RunRecorder` so far (e.g. a
        :class:`cortex_fa.live.PartialWriter` that writes the partial results).

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
    if data is None:
        from cortex_fa.data import load_mnist

        data = load_mnist(progress=progress)
    backend = backends.get(config.backend)
    rng = np.random.default_rng(config.seed)

    pool, val_idx = validation_split(len(data.train_labels), config.validation)
    n_pool = len(pool)
    train_idx = pool if config.train_subset is None else np.sort(
        rng.permutation(n_pool)[: min(config.train_subset, n_pool)]
    )
    val_images, val_labels = data.train_images[n_pool:], data.train_labels[n_pool:]  # views: no copy
    probe_idx = rng.choice(train_idx, size=min(config.probe_size, len(train_idx)), replace=False)
    probe_x = kernels.normalise(data.train_images[probe_idx])
    probe = metrics.Probe(probe_x, kernels.one_hot(data.train_labels[probe_idx]), config.loss)

    network = Network.from_config(config)
    rule = rules.make(config.rule, config.rule_params)
    model = backend.compile(network, rule, config, rng)

    bs = config.batch_size
    steps_per_epoch = -(-len(train_idx) // bs)
    total = steps_per_epoch * config.epochs
    schedule = set(logging_steps(steps_per_epoch, config.epochs, log_early=config.log_early, log_every=config.log_every))
    recorder = RunRecorder(config, network.n_layers, steps_per_epoch, data, backend=model.backend)
    recorder.extra_attrs.update(getattr(model, "attrs", {}))  # e.g. Brian2's tau and settling time
    clock = 0.0
    diverged_loss = DIVERGED_FACTOR * chance_loss(config.loss)

    val_history: list[float] = []
    # Synapse snapshots draw their sample from a stream of their own: rng is untouched.
    snaps = None
    if config.snapshots:
        snaps = snapshots.SnapshotRecorder(network.sizes, rule.pathway, config.snapshots, config.seed,
                                           snapshots.snapshot_steps(steps_per_epoch, config.epochs, schedule))

    def log(step, run_loss, run_correct, run_seen, *, test: bool):
        row = {"train_loss": run_loss / run_seen if run_seen else np.nan,
               "train_accuracy": run_correct / run_seen if run_seen else np.nan}
        if test:
            row["test_loss"], row["test_accuracy"] = model.evaluate(data.test_images, data.test_labels)
            if len(val_idx):
                row["validation_loss"], row["validation_accuracy"] = model.evaluate(val_images, val_labels)
                val_history.append(row["validation_accuracy"])
        if config.metrics and step in schedule:
            row.update(probe.evaluate(rule, model.weights, model.biases, model.activations, model.state))
        if snaps is not None and step in snaps.steps:
            snaps.take(step, rule, model.weights, model.state)
        recorder.add(step, clock, row)
        if on_log is not None:  # outside the clock: live writing is not training time
            on_log(recorder)

    if 0 in schedule:
        # no test pass here: at step 0 it would only confirm chance accuracy, at
        # the price of 10,000 forward passes (~8 % of a 784-1000-10 epoch)
        log(0, 0.0, 0, 0, test=False)
    step = 0
    status = "ok"
    stopped_early = False
    trains_blocks = hasattr(model, "train_block")  # models that run many presentations per call
    for epoch in range(config.epochs):
        order = train_idx[rng.permutation(len(train_idx))]
        run_loss, run_correct, run_seen = 0.0, 0, 0
        lr = optim.learning_rate(config, epoch, step, total)
        bar = _progress(progress, steps_per_epoch, f"{config.rule} epoch {epoch + 1}/{config.epochs}")
        pending = deque()  # (loss_sum, correct) of batches a block already trained (see _block)
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            t0 = time.perf_counter()
            if config.lr_schedule == "cosine":
                lr = optim.learning_rate(config, epoch, step, total)
            if not pending and trains_blocks:
                pending = _block(model, data, order, start, bs, step, steps_per_epoch, schedule, config, epoch, total, lr)
            if pending:
                loss_sum, correct = pending.popleft()
            else:
                x = kernels.normalise(data.train_images[idx])
                labels = data.train_labels[idx]
                loss_sum, correct = model.train_batch(x, kernels.one_hot(labels), labels, lr)
            clock += time.perf_counter() - t0
            step += 1
            if not np.isfinite(loss_sum) or loss_sum > diverged_loss * len(idx):
                status = "diverged"
                break
            run_loss += loss_sum
            run_correct += correct
            run_seen += len(idx)
            if bar is not None:
                bar.update(1)
                if step % 50 == 0:
                    bar.set_postfix(loss=f"{run_loss / run_seen:.3f}", acc=f"{run_correct / run_seen:.3f}")
            if step in schedule and step % steps_per_epoch:
                log(step, run_loss, run_correct, run_seen, test=False)
        if bar is not None:
            bar.close()
        if status == "diverged":
            break
        if step in schedule or len(val_idx):  # with a validation split every epoch end is logged
            log(step, run_loss, run_correct, run_seen, test=True)
        if val_history:
            _, stopped_early = best_epoch(val_history, config.patience)
            if stopped_early:
                break
    if val_history:
        recorder.extra_attrs.update(
            validation_size=len(val_idx),
            validation_split=f"last {len(val_idx)} images of the training file",
            best_validation_epoch=best_epoch(val_history)[0] + 1,
            stopped_epoch=len(val_history),
            stopped_early=int(stopped_early),
        )
    ds = recorder.to_dataset(status=status, diverged_at=step if status == "diverged" else None)
    return ds if snaps is None else annotate(ds.merge(snaps.to_dataset(steps_per_epoch), combine_attrs="override"))


def _block(model, data, order, start, bs, step, steps_per_epoch, schedule, config, epoch, total, lr):
    """Train every batch up to the next logging step or epoch end in one ``model.train_block`` call.

    For models that run many presentations per call (the Brian2 backend):
    Python then steps in only where the loop needs the weights. Batch ``k``
    of the block presents its ``N`` digits with ``lr_k / N`` each, exactly as
    ``train_batch`` would. Returns ``(loss_sum, correct)`` per batch.
    """
    end = step + 1
    while end % steps_per_epoch and end not in schedule and (end - step) * bs < len(order) - start:
        end += 1
    stop = min(len(order), start + (end - step) * bs)
    idx = order[start:stop]
    sizes = [min(bs, stop - s) for s in range(start, stop, bs)]
    lrs = np.concatenate([np.full(n, (optim.learning_rate(config, epoch, step + k, total)
                                      if config.lr_schedule == "cosine" else lr) / n) for k, n in enumerate(sizes)])
    labels = data.train_labels[idx]
    losses, correct = model.train_block(kernels.normalise(data.train_images[idx]), kernels.one_hot(labels), labels, lrs)
    bounds = np.cumsum([0, *sizes])
    return deque((float(losses[a:b].sum()), int(correct[a:b].sum())) for a, b in zip(bounds[:-1], bounds[1:]))


def _progress(enabled, total, desc):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (CI logs, pipes)
    return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True, disable=None)
