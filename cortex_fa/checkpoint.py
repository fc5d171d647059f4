"""Checkpoints: a simulation's whole state in one NetCDF file that plain xarray reads.

A checkpoint holds everything :meth:`Simulation.run` needs to continue bit
for bit, as variables and attributes with plain names:

* the results so far (the run schema: ``train_loss(step)``,
  ``delta_alignment(step, layer)``, ...; synapse snapshots if any);
* every projection's matrix and every bias (``input_to_column1(input,
  column1)``, ..., ``column1_bias(column1)``: the layout of
  :attr:`Simulation.weights`);
* the rule's feedback state (``state__B__2``; per-column rules nest a level:
  ``state__fa__B__2``), the optimiser's moments (``optimizer__velocity__0``,
  RMSprop's ``optimizer__square_avg__0``)
  and the initial forward weights (``initial__W__1``, for ``learned_alignment``);
* the epoch in progress (``epoch_order``) and, in attributes, the counters,
  the validation history, every random stream's state, the config and the
  network description (JSON).

It is written atomically (temporary file, then ``os.replace``) like a
results file; its ``title`` is ``cortex_fa checkpoint``, so results readers
refuse it with a pointer to :meth:`Simulation.restore`.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
import xarray as xr

from cortex_fa import __version__
from cortex_fa.errors import ResultsError
from cortex_fa.metrics import PER_LAYER
from cortex_fa.results import PER_STEP, write_atomic

TITLE = "cortex_fa checkpoint"
VERSION = 1
SEP = "__"


def _forward_pairs(network):
    """``(source, target)`` population names of each column's feedforward projection, in order."""
    below = ["input"] + [c.name for c in network.columns]
    return list(zip(below[:-1], below[1:]))


def _forward_variables(sim) -> dict:
    """Every column's W and bias as xarray Variables (copies), dims named after the populations."""
    out = {}
    for l, ((source, target), W, b) in enumerate(zip(_forward_pairs(sim.network), sim.model.weights,
                                                      sim.model.biases), start=1):
        out[f"{source}_to_{target}"] = xr.Variable((source, target), np.array(W),
                                  {"long_name": f"feedforward (basal) weights W_{l}", "units": "1"})
        if b is not None:
            out[f"{target}_bias"] = xr.Variable((target,), np.array(b), {"long_name": f"bias b_{l}", "units": "1"})
    return out


def weights_dataset(sim) -> xr.Dataset:
    """Every projection's matrix (feedback: the matrix actually used) and bias, dims named after populations."""
    model = sim.model
    out = _forward_variables(sim)
    for layer, col in _feedback_layers(sim):
        fb = col.feedback
        matrix = np.array(sim.rule.feedback(model.weights, model.state, layer))
        out[f"{fb.source}_to_{fb.target}"] = xr.Variable(
            (fb.source, fb.target), matrix,
            {"long_name": f"feedback (apical) weights onto {fb.target}, as used by rule "
                          f"{getattr(sim.rule, 'owner', {}).get(layer, sim.rule.name)}", "units": "1"})
    return xr.Dataset(out, attrs={"rule": sim.rule_label, "step": int(sim.step), "seed": int(sim.config.seed)})


def _feedback_layers(sim):
    """``(layer of the feedback matrix, column it teaches)`` for each feedback projection."""
    cols, pathway = sim.network.columns, sim.network.pathway
    for i, col in enumerate(cols):
        if col.feedback is not None:
            yield (i + 2 if pathway == "layerwise" else i + 1), col


def _flatten_state(state, prefix="state"):
    """``(name, array)`` for every array in a rule's (possibly nested) state dict."""
    for key, value in state.items():
        name = f"{prefix}{SEP}{key}"
        if isinstance(value, dict):
            yield from _flatten_state(value, name)
        elif isinstance(value, np.ndarray):
            yield name, value


def store(sim, path) -> Path:
    """Write ``sim`` to ``path`` (see the module docstring)."""
    ds = sim.results.copy()
    ds.attrs = {}
    arrays = dict(_flatten_state(sim.model.state))
    arrays.update({f"initial{SEP}W{SEP}{l}": W0 for l, W0 in enumerate(sim.initial_weights, start=1)})
    arrays.update(_optimizer_arrays(sim.model.optimizer))
    if sim.current is not None:
        arrays["epoch_order"] = sim.current.order
    for name, value in arrays.items():
        ds[name] = xr.Variable(tuple(f"{name}{SEP}d{i}" for i in range(value.ndim)), np.array(value))
    for name, var in _forward_variables(sim).items():  # the feedback state is stored above, as it is kept
        ds[name] = var
    ep = sim.current
    counters = {"step": sim.step, "clock": sim.clock, "status": sim.status, "stop_reason": sim.stop_reason,
                "diverged_at": sim.diverged_at, "validation_history": sim.validation_history,
                "epoch": None if ep is None else {"number": ep.number, "position": ep.position, "loss": ep.loss,
                                                  "correct": ep.correct, "seen": ep.seen,
                                                  "lr_drops": ep.lr_drops},
                "adam_t": getattr(sim.model.optimizer, "t", None), "resumed_at": sim.resumed_at}
    ds.attrs = {
        "title": TITLE, "checkpoint_version": VERSION, "cortex_fa_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": sim.config.to_json(), "network": json.dumps(sim.network.to_dict()),
        "random_streams": sim.streams.state(), "counters": json.dumps(counters),
    }
    return write_atomic(ds, path)


def _optimizer_arrays(opt) -> dict:
    out = {}
    for attr in ("velocity", "m", "v", "square_avg"):
        for i, arr in enumerate(getattr(opt, attr, None) or ()):
            out[f"optimizer{SEP}{attr}{SEP}{i}"] = arr
    return out


def load(path) -> xr.Dataset:
    """Read a checkpoint into memory; a clear ResultsError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"checkpoint {path} does not exist" if not path.exists() else f"checkpoint {path} is not a file")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            ds = ds.load()
    except Exception as exc:  # netCDF4 raises OSError/ValueError/RuntimeError on junk
        raise ResultsError(f"{path} is not a readable NetCDF checkpoint ({type(exc).__name__}: {str(exc)[:120]})") from None
    if ds.attrs.get("title") != TITLE:
        raise ResultsError(f"{path} is not a cortex_fa checkpoint (title {ds.attrs.get('title')!r}); "
                           "results files open with cortex_fa.open_results")
    if int(ds.attrs.get("checkpoint_version", 0)) > VERSION:
        raise ResultsError(f"{path} is a checkpoint of version {ds.attrs['checkpoint_version']}; "
                           f"this cortex_fa reads version {VERSION} (upgrade cortex_fa)")
    return ds


def config_of(ds):
    from cortex_fa.config import RunConfig

    return RunConfig.from_json(ds.attrs["config"])


def network_of(ds) -> dict:
    return json.loads(ds.attrs["network"])


def apply(sim, ds) -> None:
    """Put a freshly built ``sim`` into the state stored in ``ds``."""
    from cortex_fa.epoch import Epoch

    model = sim.model
    for (source, target), W, b in zip(_forward_pairs(sim.network), model.weights, model.biases):
        W[...] = ds[f"{source}_to_{target}"].values
        if b is not None:
            b[...] = ds[f"{target}_bias"].values
    initial = {f"initial{SEP}W{SEP}{l}": W0 for l, W0 in enumerate(sim.initial_weights, start=1)}
    for name, arr in list(_flatten_state(model.state)) + list(_optimizer_arrays(model.optimizer).items()) + list(initial.items()):
        if name not in ds:
            raise ResultsError(f"checkpoint lacks {name}: it was written by another rule or optimiser")
        arr[...] = ds[name].values
    counters = json.loads(ds.attrs["counters"])
    if counters["adam_t"] is not None:
        model.optimizer.t = int(counters["adam_t"])
    sim.streams.set_state(ds.attrs["random_streams"])
    sim.step, sim.clock = int(counters["step"]), float(counters["clock"])
    sim.status, sim.stop_reason, sim.diverged_at = counters["status"], counters["stop_reason"], counters["diverged_at"]
    sim.validation_history = [float(v) for v in counters["validation_history"]]
    sim.resumed_at = [int(v) for v in counters.get("resumed_at", [])]
    if counters["epoch"] is not None:
        e = counters["epoch"]
        sim.current = Epoch(int(e["number"]), ds["epoch_order"].values.astype(np.int64), int(e["position"]),
                            float(e["loss"]), int(e["correct"]), int(e["seen"]),
                            # older checkpoints: the count follows from the restored history
                            int(e.get("lr_drops", sim.lr_drops)))
    _restore_rows(sim.recorder, ds)
    if sim.snapshots is not None and "snapshot_step" in ds.dims:
        _restore_snapshots(sim.snapshots, ds)
    if hasattr(model, "sync_synapses"):  # backends that keep copies of the weights
        model.sync_synapses()


def _restore_rows(recorder, ds) -> None:
    recorder.steps, recorder.rows = [], []
    for i, step in enumerate(ds["step"].values):
        row = {name: ds[name].values[i] for name in PER_LAYER if name in ds}
        row.update({name: float(ds[name].values[i]) for name in PER_STEP if name in ds and name != "wall_time"})
        recorder.add(int(step), float(ds["wall_time"].values[i]), row)


def _restore_snapshots(rec, ds) -> None:
    rec.taken, rec.forward, rec.feedback, rec.fields = [], [], [], []
    for s, step in enumerate(ds["snapshot_step"].values):
        rec.taken.append(int(step))
        rec.forward.append([ds["snapshot_forward"].values[s, l, :len(i)] for l, (i, _) in enumerate(rec.pairs)])
        rec.feedback.append([ds["snapshot_feedback"].values[s, l, :len(i)] for l, (i, _) in enumerate(rec.pairs)])
        rec.fields.append(ds["receptive_field"].values[s])
