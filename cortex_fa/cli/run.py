"""``cortex-fa run``: train one network on MNIST and write a results file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cortex_fa.cli.options import add_run_options, run_options
from cortex_fa.cli.serve import add_serve_options, keep_serving, start_live
from cortex_fa.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="train one network and save its alignment record",
        description="Train one network on MNIST with a learning rule; write an xarray/NetCDF results file.",
    )
    p.add_argument("--out", default="run.nc", help="results file to write (default run.nc)")
    p.add_argument("--data-dir", default=None, help="directory holding the four MNIST IDX files")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    p.add_argument("--partial", action=argparse.BooleanOptionalAction, default=True,
                   help="keep OUT.partial.nc (the results so far) up to date while training, "
                        "for 'cortex-fa serve --live' (default: yes)")
    p.add_argument("--checkpoint", metavar="PATH.nc", default=None,
                   help="store the whole simulation to PATH.nc after every epoch (and on Ctrl-C)")
    p.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint PATH.nc if it exists (the same run options), else start")
    add_serve_options(p)
    add_run_options(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from cortex_fa.config import RunConfig

    config = RunConfig.from_dict(run_options(args))
    out = Path(args.out)
    check_writable(out)
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if args.resume and checkpoint is None:
        raise ConfigError("--resume continues from a checkpoint: give --checkpoint PATH.nc too")
    if checkpoint is not None:
        check_writable(checkpoint, flag="--checkpoint")
        if checkpoint.resolve() == out.resolve():
            raise ConfigError(f"--checkpoint {checkpoint} is the --out file; give the checkpoint a name of its own")
    from cortex_fa import backends, results
    from cortex_fa.callbacks import Checkpoint
    from cortex_fa.data import load_mnist

    backends.get(config.backend)  # a missing optional backend fails before the data loads

    data = load_mnist(args.data_dir, progress=not args.quiet)
    sim = start(config, data, checkpoint if args.resume else None, quiet=args.quiet)
    from cortex_fa.live import PartialWriter

    writer = PartialWriter(results.partial_path(out)) if args.partial or args.serve else None
    server = start_live(out, args, since=time.time() - 1)  # not the previous run's OUT
    callbacks = [cb for cb in (writer, Checkpoint(checkpoint) if checkpoint else None) if cb is not None]
    sim.run(callbacks=callbacks)
    if sim.status == "interrupted" and checkpoint is not None:
        sim.store(checkpoint)
    ds = sim.results
    results.save_results(ds, out)
    if writer is not None:
        writer.discard()  # after the final file is in place: a reader always has one of the two
    if sim.status == "interrupted":
        resume = f"; continue with the same command and --resume" if checkpoint is not None else ""
        print(f"interrupted at step {sim.step} (epoch {sim.step / sim.steps_per_epoch:.2f}): wrote {out} "
              f"with status interrupted{resume}", file=sys.stderr, flush=True)
        return 130
    if not args.quiet:
        print(summary_table(ds))
    print(f"wrote {out}" + ("  (run DIVERGED: see attrs['diverged_at_step'])" if ds.attrs["status"] == "diverged" else ""),
          flush=True)
    keep_serving(server, args)
    return 0


def start(config, data, checkpoint, *, quiet: bool):
    """A new simulation of ``config``, or the one stored in ``checkpoint`` (which must be of ``config``)."""
    from cortex_fa.simulation import Simulation

    if checkpoint is None or not checkpoint.exists():
        if checkpoint is not None and not quiet:
            print(f"no checkpoint at {checkpoint} yet: starting", file=sys.stderr)
        return Simulation(config, data=data, progress=not quiet)
    sim = Simulation.restore(checkpoint, data=data, progress=not quiet)
    stored, given = sim.config.to_dict(), config.to_dict()
    differ = [k for k in given if stored.get(k) != given[k]]
    if differ:
        k = differ[0]
        raise ConfigError(f"checkpoint {checkpoint} is of another run ({k} {stored.get(k)!r} there, {given[k]!r} here); "
                          "use the options it was made with, or another --checkpoint path")
    if not quiet:
        print(f"resuming {checkpoint} at step {sim.step} (epoch {sim.step / sim.steps_per_epoch:.2f})", file=sys.stderr)
    return sim


def check_writable(out: Path, flag: str = "--out") -> None:
    """Fail before training, not after, if the results cannot be written."""
    parent = out.parent if str(out.parent) else Path(".")
    if out.suffix != ".nc":
        raise ConfigError(f"{flag} {out}: results files are NetCDF; use a name ending in .nc")
    if out.is_dir():
        raise ConfigError(f"{flag} {out} is a directory; give a file name ending in .nc")
    probe_directory(parent, f"{flag} {out}")


def probe_directory(directory: Path, what: str) -> None:
    """Create and delete a file in ``directory``: the only check that is right for
    root, read-only mounts and network file systems alike (os.access is not)."""
    import tempfile

    if not directory.is_dir():
        raise ConfigError(f"{what}: directory {directory} does not exist")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise ConfigError(f"{what}: directory {directory} is not writable ({exc.strerror or exc})") from None


def summary_table(ds) -> str:
    """A short plain-text summary: final accuracy and per-layer alignment."""
    import numpy as np

    last = ds.isel(step=-1)
    lines = [
        f"rule {ds.attrs.get('column_rules', ds.attrs['rule'])}  depth {ds.attrs['depth']}  seed {ds.attrs['seed']}  status {ds.attrs['status']}",
        f"epoch {float(last.epoch):.2f}  test accuracy {float(last.test_accuracy):.4f}  "
        f"train loss {float(last.train_loss):.4f}  wall {float(last.wall_time):.1f} s",
        f"{'layer':>5} {'weight°':>8} {'delta°':>8} {'update°':>8} {'delta rms':>10}",
    ]
    for layer in ds.layer.values:
        row = last.sel(layer=layer)
        vals = [float(row[v]) for v in ("weight_alignment", "delta_alignment", "update_alignment")]
        txt = " ".join(f"{v:8.1f}" if np.isfinite(v) else f"{'-':>8}" for v in vals)
        dn = float(row.delta_norm)
        lines.append(f"{int(layer):>5} {txt} {dn:10.2e}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(None))
