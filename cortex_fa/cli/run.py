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
    add_serve_options(p)
    add_run_options(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from cortex_fa.config import RunConfig

    config = RunConfig.from_dict(run_options(args))
    out = Path(args.out)
    check_writable(out)
    from cortex_fa import backends, results, training
    from cortex_fa.data import load_mnist

    backends.get(config.backend)  # a missing optional backend fails before the data loads

    data = load_mnist(args.data_dir, progress=not args.quiet)
    from cortex_fa.live import PartialWriter

    writer = PartialWriter(results.partial_path(out)) if args.partial or args.serve else None
    server = start_live(out, args, since=time.time() - 1)  # not the previous run's OUT
    ds = training.train(config, data, progress=not args.quiet, on_log=writer)
    results.save_results(ds, out)
    if writer is not None:
        writer.discard()  # after the final file is in place: a reader always has one of the two
    if not args.quiet:
        print(summary_table(ds))
    print(f"wrote {out}" + ("  (run DIVERGED: see attrs['diverged_at_step'])" if ds.attrs["status"] == "diverged" else ""),
          flush=True)
    keep_serving(server, args)
    return 0


def check_writable(out: Path) -> None:
    """Fail before training, not after, if the results cannot be written."""
    parent = out.parent if str(out.parent) else Path(".")
    if out.suffix != ".nc":
        raise ConfigError(f"--out {out}: results files are NetCDF; use a name ending in .nc")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name ending in .nc")
    probe_directory(parent, f"--out {out}")


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
        f"rule {ds.attrs['rule']}  depth {ds.attrs['depth']}  seed {ds.attrs['seed']}  status {ds.attrs['status']}",
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
