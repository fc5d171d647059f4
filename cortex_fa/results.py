"""Results as xarray Datasets and NetCDF files: schema, writing, reading.

One run has dims ``step`` and ``layer``; coordinate ``epoch`` (float) lives
on ``step``, ``layer`` runs ``1..L`` (``L`` is the readout column) and
``layer_from_top`` on ``layer`` counts down from the readout (0). A study
adds dims such as ``rule``, ``n_hidden`` and ``seed`` (see
:mod:`cortex_fa.combine`). Files are written atomically, in CF form (see
:mod:`cortex_fa.cf`), and checked on read: declared sizes first (see
:mod:`cortex_fa.limits`), then the schema.
"""

from __future__ import annotations

import datetime as _dt
import glob as _glob
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from cortex_fa import __version__, snapshots
from cortex_fa.cf import (CONVENTIONS, RUN_INTERNAL_DIMS, SCHEMA_TITLE, annotate_coords, from_file, to_file,
                          with_layer_from_top)
from cortex_fa.combine import combine_runs
from cortex_fa.errors import ResultsError
from cortex_fa.limits import Limits, check_file, check_sizes
from cortex_fa.metrics import PER_LAYER

# name -> (long_name, units)
VARIABLES = {
    "weight_alignment": ("angle between the feedback used and W^T (direct rules: the linear path)", "degree"),
    "delta_alignment": ("angle between the rule's delta and backprop's delta on the probe batch", "degree"),
    "update_alignment": ("angle between the rule's weight update and backprop's on the probe batch", "degree"),
    "delta_norm": ("RMS of the rule's delta over probe examples and units", "1"),
    "grad_norm": ("Frobenius norm of the rule's weight update dW on the probe batch", "1"),
    "feedback_norm_ratio": ("|B_l| / |W_l| (Frobenius), layer-wise rules only", "1"),
    "learned_alignment": ("angle between the feedback used and (W - W(0))^T, what learning wrote "
                          "(direct rules: the change of the linear path)", "degree"),
    "weight_change": ("|W_l - W_l(0)| / |W_l(0)| (Frobenius)", "1"),
    "train_loss": ("training loss, running mean over the epoch so far", "1"),
    "train_accuracy": ("training accuracy, running mean over the epoch so far", "1"),
    "test_loss": ("loss on the 10,000 test images", "1"),
    "test_accuracy": ("accuracy on the 10,000 test images", "1"),
    "validation_loss": ("loss on the validation split (held-out training images)", "1"),
    "validation_accuracy": ("accuracy on the validation split (held-out training images)", "1"),
    "wall_time": ("training time so far, metric and test evaluation excluded", "s"),
    **snapshots.VARIABLES,  # synapse snapshots (RunConfig.snapshots): dims of their own
}
# A run still training keeps NAME.partial.nc next to the NAME.nc it will write (see cortex_fa.live).
PARTIAL_SUFFIX = ".partial.nc"
PER_STEP = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "validation_loss",
            "validation_accuracy", "wall_time")


def _blas_name() -> str:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', 'unknown')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no dict mode
        return "unknown"


class RunRecorder:
    """Collects logged rows during training and turns them into a Dataset."""

    def __init__(self, config, n_layers: int, steps_per_epoch: int, data, *, backend: str = "numpy"):
        self.config, self.n_layers, self.steps_per_epoch = config, n_layers, steps_per_epoch
        self.data_sha256 = getattr(data, "data_sha256", "unknown")
        self.backend = backend
        self.extra_attrs: dict = {}
        self.steps: list[int] = []
        self.rows: list[dict] = []

    def add(self, step: int, wall_time: float, row: dict) -> None:
        self.steps.append(int(step))
        self.rows.append({**row, "wall_time": wall_time})

    def to_dataset(self, *, status: str = "ok", diverged_at=None, extra=None) -> xr.Dataset:
        """The rows so far as a run Dataset; ``extra`` attributes are added for this Dataset only."""
        n, L = len(self.steps), self.n_layers
        data_vars = {}
        for name in PER_LAYER:
            arr = np.full((n, L), np.nan)
            for i, row in enumerate(self.rows):
                if name in row:
                    arr[i] = row[name]
            data_vars[name] = (("step", "layer"), arr)
        for name in PER_STEP:
            data_vars[name] = ("step", np.array([row.get(name, np.nan) for row in self.rows], dtype=float))
        steps = np.array(self.steps, dtype=np.int64)
        ds = with_layer_from_top(xr.Dataset(
            data_vars,
            coords={"step": steps, "epoch": ("step", steps / self.steps_per_epoch), "layer": np.arange(1, L + 1)},
        ))
        attrs = run_attrs(self.config, backend=self.backend, data_sha256=self.data_sha256, status=status)
        attrs["steps_per_epoch"] = int(self.steps_per_epoch)
        if diverged_at is not None:
            attrs["diverged_at_step"] = int(diverged_at)
        attrs.update(self.extra_attrs)
        attrs.update(extra or {})
        ds.attrs.update(attrs)
        return annotate(ds)


def run_attrs(config, *, backend: str, data_sha256: str, status: str) -> dict:
    """The global attributes of one run (NetCDF-safe: str and int only)."""
    return {
        "Conventions": CONVENTIONS,
        "title": SCHEMA_TITLE,
        "cortex_fa_version": __version__,
        "config": config.to_json(),
        "config_hash": config.hash(),
        "rule": config.rule,
        "seed": int(config.seed),
        "depth": int(config.depth),
        "backend": backend,
        "data_sha256": data_sha256,
        "numpy_version": np.__version__,
        "blas": _blas_name(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "status": status,
    }


def annotate(ds: xr.Dataset) -> xr.Dataset:
    """Set ``long_name`` and ``units`` on every known variable and coordinate."""
    for name, (long_name, units) in VARIABLES.items():
        if name in ds:
            ds[name].attrs.update(long_name=long_name, units=units)
    snapshots.annotate(ds)
    return annotate_coords(ds)


def save_results(ds: xr.Dataset, path, *, compress: bool = True, history: str | None = None) -> Path:
    """Write ``ds`` to NetCDF atomically (temporary file, then ``os.replace``).

    The file is written in CF form (:func:`cortex_fa.cf.to_file`): every known
    variable and coordinate annotated, under the names it has in memory (plain
    ``xarray.open_dataset`` reads back the same dims and coordinates), and a
    line ``<UTC time>: <history>`` appended to the ``history`` attribute
    (default: the ``cortex-fa`` command line, or the Python program). ``ds``
    itself is not modified.
    """
    ds = to_file(annotate(ds.copy(deep=False)), what=history)
    encoding = {}
    if compress:
        encoding = {v: {"zlib": True, "complevel": 4} for v in ds.data_vars if ds[v].dtype.kind in "fiu"}
    for name, packing in snapshots.file_encoding(ds).items():  # receptive fields as 16-bit integers
        encoding[name] = {**encoding.get(name, {}), **packing}
    return write_atomic(ds, path, encoding)


def write_atomic(ds: xr.Dataset, path, encoding=None) -> Path:
    """Write ``ds`` as it is to NetCDF at ``path``: a temporary file in the same directory, then ``os.replace``.

    A reader sees the old file or the new one, never half of one; a failed
    write (disk full) leaves the old file and no temporary behind.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ResultsError(f"cannot write {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise ResultsError(f"cannot write {path}: directory {directory} is not writable")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ResultsError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding or {})
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # disk full, quota, vanished directory
            raise ResultsError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def partial_path(path) -> Path:
    """``run.nc`` -> ``run.partial.nc``: where a run in progress keeps its results so far."""
    path = Path(path)
    return path.with_name(path.name[:-3] + PARTIAL_SUFFIX if path.name.endswith(".nc") else path.name + PARTIAL_SUFFIX)


def is_partial(path) -> bool:
    """True for the file name of a run in progress (``*.partial.nc``)."""
    return Path(path).name.endswith(PARTIAL_SUFFIX)


def open_file(path, *, limits=None) -> xr.Dataset:
    """Open one run or study file: sizes checked, loaded, closed again, schema checked.

    What the file declares is checked against ``limits`` (see
    :class:`cortex_fa.limits.Limits`) from its metadata, before any data is
    read; files written before 0.3 come back with today's names (``n_hidden``,
    a ``rule`` index, ``layer_from_top``; see :func:`cortex_fa.cf.from_file`).
    """
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"results file {path} does not exist")
    if path.is_dir():
        raise ResultsError(f"{path} is a directory; pass a .nc file or use open_results on the directory")
    check_file(path, limits)
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            ds = from_file(ds.load())
    except MemoryError:  # within the limits but not within this machine's memory
        raise ResultsError(f"{path} does not fit in this machine's memory; open it on a larger machine "
                           "(lower CORTEX_FA_MAX_BYTES to refuse such files unread)") from None
    except Exception as exc:  # netCDF4 raises OSError/ValueError/RuntimeError on junk
        raise ResultsError(f"{path} is not a readable NetCDF file ({type(exc).__name__}: {str(exc)[:120]})") from None
    validate(ds, path)
    return ds


def validate(ds: xr.Dataset, source="dataset") -> xr.Dataset:
    """Check that ``ds`` follows the cortex_fa schema; raise ResultsError if not."""
    if ds.attrs.get("title") != SCHEMA_TITLE or "cortex_fa_version" not in ds.attrs:
        raise ResultsError(f"{source} is not a cortex_fa results file (no title '{SCHEMA_TITLE}' / cortex_fa_version attribute)")
    missing = [d for d in ("step", "layer") if d not in ds.dims]
    if missing:
        raise ResultsError(f"{source} is missing dimension(s) {', '.join(missing)}; expected step and layer")
    absent = [v for v in ("test_accuracy", "train_loss", "wall_time") if v not in ds]
    if absent:
        raise ResultsError(f"{source} is missing variable(s) {', '.join(absent)}")
    for name in VARIABLES:
        if name in ds and ds[name].dtype.kind not in "fiu":
            raise ResultsError(f"{source}: variable {name} holds {ds[name].dtype} values; expected numbers")
        if name in ds and name in PER_LAYER and not {"step", "layer"} <= set(ds[name].dims):
            raise ResultsError(f"{source}: variable {name} has dims {ds[name].dims}; expected step and layer")
    if set(ds.dims) - set(RUN_INTERNAL_DIMS) and "status" not in ds:  # a study: one status per run
        raise ResultsError(f"{source} is a study without its 'status' variable (ok/diverged/missing per run)")
    if "config" in ds.attrs:
        try:
            json.loads(ds.attrs["config"])
        except (TypeError, ValueError):
            raise ResultsError(f"{source} has a config attribute that is not valid JSON") from None
    return ds


def open_results(path, *, limits=None, include_partial: bool = False) -> xr.Dataset:
    """Open a run or study file, a directory of run files, or a glob of them.

    Several files are combined into one study Dataset (see
    :func:`cortex_fa.study.combine_runs`).

    Parameters
    ----------
    path : str or path-like
        A ``.nc`` file, a directory of run files, or a glob pattern.
    limits : Limits or mapping, optional
        Largest sizes a file may declare, e.g. ``{"steps": 10**6}``; defaults
        come from :class:`cortex_fa.limits.Limits` and the ``CORTEX_FA_MAX_*``
        environment variables. Beyond them a file is refused unread.
    include_partial : bool
        Also read the ``*.partial.nc`` files of runs in progress in a
        directory (status ``running``; a run's final file wins over its
        partial one). By default they are skipped: a directory's study holds
        finished runs only.

    Raises
    ------
    ResultsError
        Missing or unreadable files, a file beyond ``limits``, a schema break,
        or runs that cannot be combined.
    """
    limits = Limits.resolve(limits)
    text = str(path)
    p = Path(text)
    if p.is_dir():
        found = sorted(p.glob("*.nc"))
        files = _drop_partial(found, include_partial)
        if not files:
            running = sum(is_partial(f) for f in found)
            raise ResultsError(f"directory {p} holds no .nc run files" + (
                f" yet, only {running} partial file(s) of runs in progress (*{PARTIAL_SUFFIX}; "
                "'cortex-fa serve --live' shows them)" if running else ""))
    elif any(ch in text for ch in "*?["):
        files = _drop_partial([Path(f) for f in sorted(_glob.glob(text))], include_partial)
        if not files:
            raise ResultsError(f"no files match {text}")
    else:
        return open_file(p, limits=limits)
    check_sizes(text, limits, runs=len(files), verb="holds")  # before opening any of them
    return annotate(combine_runs([open_file(f, limits=limits) for f in files], limits=limits,
                                 sweep=_per_cell_spec(p if p.is_dir() else Path(files[0]).parent)))


def _per_cell_spec(run_dir: Path):
    """A run dir's sweep spec (``sweep.json``) if it sets options per cell, else None.

    Its ``per_cell`` option names are no dims of the combined study, as in
    the study file the sweep wrote.
    """
    try:
        spec = json.loads((run_dir / "sweep.json").read_text()).get("spec", {})
    except (OSError, ValueError, AttributeError):
        return None
    return spec if isinstance(spec, dict) and isinstance(spec.get("per_cell"), dict) and spec["per_cell"] else None


def _drop_partial(files, include_partial: bool) -> list[Path]:
    """Drop partial files: all of them, or (``include_partial``) those whose run is finished."""
    finals = {f for f in files if not is_partial(f)}
    return [f for f in files if not is_partial(f)
            or (include_partial and f.with_name(f.name[: -len(PARTIAL_SUFFIX)] + ".nc") not in finals)]
