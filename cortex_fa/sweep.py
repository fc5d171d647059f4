"""Sweeps: a grid of runs executed on Dask, one run file each, resumable.

A :class:`~cortex_fa.spec.SweepSpec` (re-exported here) is rules x depths x
seeds x any swept run options at one hidden width. :func:`run_sweep` sends one task per run to a Dask cluster
(a local one by default); each task trains and writes
``<run dir>/<config hash>.nc`` atomically. Re-running the same sweep skips
runs whose file is complete, so a killed sweep resumes where it stopped; a
run in flight stores ``<hash>.ckpt`` after every epoch
(:meth:`~cortex_fa.simulation.Simulation.store`) and continues from it, so
a killed sweep (or a worker that died) loses at most an epoch of each run.
The run dir holds a ``sweep.json`` manifest so two different sweeps never
share one.
"""

from __future__ import annotations

import contextlib
import glob
import logging
from pathlib import Path

from cortex_fa.cluster import check_address, close, connect
from cortex_fa.config import RunConfig
from cortex_fa.errors import ConfigError, CortexFAError
from cortex_fa.spec import MAX_DEPTH, SweepSpec, parse_list  # noqa: F401 - the sweep's public names

# -- execution on Dask ----------------------------------------------------------------

_DATA = {}  # per worker process: data_dir -> MNIST, loaded once


def run_task(config: dict, run_dir: str, data_dir=None, live: bool = True) -> dict:
    """Train one run on a worker and write ``<run_dir>/<hash>.nc``; return a summary.

    Idempotent: if the file is already complete (a retried task whose first
    attempt wrote it) nothing is trained again. With ``live`` the run keeps
    ``<hash>.partial.nc`` up to date while it trains (see :mod:`cortex_fa.live`).
    """
    from cortex_fa.extras import require

    require("dask", "a sweep task")
    import dask

    from cortex_fa import study
    from cortex_fa.callbacks import Checkpoint
    from cortex_fa.errors import ResultsError
    from cortex_fa.live import PartialWriter
    from cortex_fa.results import partial_path, save_results
    from cortex_fa.simulation import Simulation

    with _plugin_warnings_off():
        cfg = RunConfig.from_dict(config)
    path = Path(run_dir) / f"{cfg.hash()}.nc"
    summary = {"path": str(path), "rule": cfg.rule, "depth": cfg.depth, "seed": cfg.seed}
    if study.run_file_ok(path, cfg.hash()):
        return {**summary, "status": "exists"}
    if data_dir not in _DATA:
        from cortex_fa.data import load_mnist

        _DATA[data_dir] = load_mnist(data_dir, progress=False)
    try:  # belt and braces: the env vars cannot help if numpy was loaded before them
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = contextlib.nullcontext
    # Inside a task xarray would take a cluster-wide lock (a round trip to the scheduler)
    # for every file it writes; this run's file is ours alone, so a local lock will do.
    with threadpool_limits(1), dask.config.set(scheduler="synchronous"):
        # <hash>.partial.nc while it trains (the live app reads it); never taken for a finished run
        writer = PartialWriter(partial_path(path)) if live else None
        # <hash>.ckpt after every epoch: a killed sweep loses at most an epoch of each run in flight
        ckpt = checkpoint_path(path) if cfg.backend == "numpy" else None
        sim = None
        if ckpt is not None and ckpt.exists():
            try:
                sim = Simulation.restore(ckpt, data=_DATA[data_dir], progress=False)
            except (ResultsError, KeyError, ValueError):  # a checkpoint from an older cortex_fa: start again
                sim = None
        if sim is None or sim.config.to_json() != cfg.to_json():
            sim = Simulation(cfg, data=_DATA[data_dir], progress=False)
        sim.run(callbacks=[cb for cb in (writer, Checkpoint(ckpt) if ckpt else None) if cb is not None])
        ds = sim.results
        save_results(ds, path)
        if writer is not None:
            writer.discard()
        if ckpt is not None:
            ckpt.unlink(missing_ok=True)
    return {**summary, "status": ds.attrs["status"]}


def checkpoint_path(run_file: Path) -> Path:
    """``<run dir>/<hash>.nc`` -> ``<run dir>/<hash>.ckpt``: the run's checkpoint (not a ``*.nc`` run file)."""
    return run_file.with_suffix(".ckpt")


@contextlib.contextmanager
def _plugin_warnings_off():
    """Keep a worker quiet about broken rule plugins while it reads a task's config.

    The sweep's own process found the same plugins when it validated the
    spec and warned there, once; every worker would repeat it. A plugin
    the task needs still fails the task with its reason, which the sweep prints.
    """
    logger = logging.getLogger("cortex_fa.rules")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _cost(cfg: RunConfig) -> float:
    sizes = (784, *cfg.hidden, 10)
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) * cfg.epochs * (cfg.train_subset or 60000)


def run_sweep(spec: SweepSpec, out, *, run_dir=None, workers=None, scheduler=None, data_dir=None,
              progress: bool = True, retries: int = 2, announce=None, preload=()):
    """Run (or resume) a sweep on Dask and write the combined study to ``out``.

    Parameters
    ----------
    spec : SweepSpec
    out : path-like
        Study file to write (atomically) once every run is done.
    run_dir : path-like, optional
        Where run files go; default ``<out stem>.runs`` next to ``out``.
    workers : int, optional
        Local worker processes (default: one per core). Ignored with ``scheduler``.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``).
    data_dir : path-like, optional
        MNIST directory as seen by the workers (default: their cache).
    progress : bool
        One progress bar over runs.
    retries : int
        Times Dask reruns a task that failed (for instance on a lost worker).
    announce : callable, optional
        Called as ``announce(n_runs, n_todo, run_dir, n_resuming)`` once the run
        dir is checked; ``n_resuming`` of the runs to do continue from a checkpoint.
    preload : sequence of str, optional
        Files or modules every local worker imports first, e.g. the module
        that registers a custom rule (already imported here; see
        :func:`cortex_fa.cluster.load_preloads`).

    Returns
    -------
    (xarray.Dataset, list)
        The study and a list of ``(config, error text)`` for runs that failed.
    """
    from cortex_fa import study
    from cortex_fa.extras import require

    require("dask", "a sweep")  # before the run dir is checked or anything written
    from cortex_fa.results import save_results

    out = Path(out)
    run_dir = Path(run_dir) if run_dir else study.default_run_dir(out)
    configs = spec.configs()
    manifest = {"spec": spec.to_dict(), "runs": sorted(c.hash() for c in configs)}
    study.check_run_dir(run_dir, manifest)
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: directory {out.parent} does not exist")
    if scheduler:
        check_address(scheduler)
    todo = [c for c in configs if not study.run_file_ok(run_dir / f"{c.hash()}.nc", c.hash())]
    failures = []
    if announce is not None:
        resuming = sum(checkpoint_path(run_dir / f"{c.hash()}.nc").exists() for c in todo)
        announce(len(configs), len(todo), run_dir, resuming)
    if todo:
        client = connect(scheduler, workers, len(todo), preload=preload)  # before writing anything
        try:
            _write_manifest(run_dir, manifest)
            study.clean_temporaries(run_dir)
            failures = _execute(client, sorted(todo, key=_cost, reverse=True), run_dir, data_dir,
                                len(configs), progress, retries)
        finally:
            close(client)
    else:
        _write_manifest(run_dir, manifest)
    paths = [run_dir / f"{c.hash()}.nc" for c in configs]
    runs = study.load_runs([p for p in paths if p.exists()])
    if not runs:
        raise CortexFAError(f"no run of the sweep finished; first error: {failures[0][1] if failures else '?'}")
    ds = study.combine_runs(runs, sweep=spec.to_dict(), coords=spec.coords())
    # A sweep killed while writing the study leaves save_results' temporary behind; the
    # re-run that resumes it is the one place that knows the name, so it cleans up.
    for stale in out.parent.glob(f".{glob.escape(out.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    try:
        save_results(ds, out)
    except OSError as exc:
        raise CortexFAError(f"cannot write {out}: {exc.strerror or exc}") from None
    return ds, failures


def _write_manifest(run_dir: Path, manifest: dict) -> None:
    from cortex_fa import study

    try:
        study.write_manifest(run_dir, manifest)
    except OSError as exc:
        raise CortexFAError(f"cannot write the sweep manifest in run dir {run_dir}: {exc.strerror or exc}") from None


def _execute(client, todo, run_dir, data_dir, total, progress, retries):
    from distributed import as_completed
    from tqdm.auto import tqdm

    # absolute paths: workers started elsewhere have another working directory
    run_dir, data_dir = Path(run_dir).resolve(), None if data_dir is None else str(Path(data_dir).resolve())
    futures = {client.submit(run_task, c.to_dict(), str(run_dir), data_dir,
                             key=f"cortex_fa-run-{c.hash()}", pure=False, retries=retries): c for c in todo}
    failures = []
    with tqdm(total=total, initial=total - len(todo), unit="run", desc="sweep", disable=not progress,
              dynamic_ncols=True) as bar:
        for future in as_completed(futures, loop=client.loop):
            cfg = futures[future]
            if future.status == "error":
                exc = future.exception()
                failures.append((cfg, f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"))
            elif future.status != "finished":
                failures.append((cfg, f"task {future.status}"))
            elif not Path(future.result()["path"]).exists():  # written on a worker we do not share files with
                failures.append((cfg, f"a worker wrote {future.result()['path']} but it is not visible here; "
                                      "the run dir must be on a file system shared by all workers"))
            bar.set_postfix_str(f"{cfg.rule} depth {cfg.depth} seed {cfg.seed}", refresh=False)
            bar.update(1)
    return failures
