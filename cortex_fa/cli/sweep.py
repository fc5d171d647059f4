"""``cortex-fa sweep``: a grid of runs on Dask, resumable, combined into one study file.

Examples
--------
::

    cortex-fa sweep --rules bp,fa --depths 1,2,3 --width 240 --seeds 0,1,2 --epochs 5 --out study.nc
    cortex-fa sweep --rules fa --depths 2 --grid lr=0.01,0.05 --grid batch_size=50,100 --out lr.nc
    cortex-fa sweep --config models/depth_study.toml --out depth.nc --scheduler tcp://SCHEDULER-HOST:8786
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from cortex_fa.cli.common import check_dir_writable  # also imported from here by cli.plot
from cortex_fa.cli.options import add_run_options, run_options
from cortex_fa.cli.serve import add_serve_options, keep_serving, start_live
from cortex_fa.config import RunConfig, parse_rules
from cortex_fa.errors import ConfigError, did_you_mean

SECTIONS = ("sweep", "grid", "quick", "published", "preset", "protocol")
TABLES = ("run", *SECTIONS)  # every table a sweep config (or a preset file) may hold
_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="run rules x depths x seeds (x grid) on Dask and combine the results",
        description="Train every combination of rules, depths, seeds and --grid values on a Dask cluster "
                    "(a local one by default). Each run is written to <run dir>/<config hash>.nc as it "
                    "finishes; re-running the same command resumes. Finally all runs are combined into --out.",
    )
    p.add_argument("--rules", help="comma-separated learning rules, e.g. bp,fa,usf,frsf,dfa")
    p.add_argument("--depths", help="comma-separated numbers of hidden columns, e.g. 1,2,3,4,5,6,7 (default 1)")
    p.add_argument("--width", help="units per hidden column (default 500)")
    p.add_argument("--seeds", help="comma-separated seeds (default 0)")
    p.add_argument("--grid", action="append", metavar="NAME=V1,V2", default=[],
                   help="sweep any run option too (repeatable), e.g. --grid lr=0.01,0.05")
    p.add_argument("--out", default="study.nc", help="study file to write (default study.nc)")
    p.add_argument("--run-dir", help="directory of the per-run files (default: <out stem>.runs next to --out)")
    add_dask_options(p)
    p.add_argument("--preload", action="append", default=[], metavar="FILE_OR_MODULE",
                   help="a .py file or module to import first, here and in every local worker "
                        "(e.g. one that registers a custom rule); repeatable")
    p.add_argument("--data-dir", help="MNIST directory as seen by the workers (default: their cache)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    add_serve_options(p)
    add_run_options(p, skip=("rule", "hidden", "seed", "label"))
    p.set_defaults(func=main)


def add_dask_options(p) -> None:
    p.add_argument("--workers", type=positive_int, metavar="N", help="local worker processes (default: one per core)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="use a running Dask cluster, e.g. tcp://host:8786 (from 'dask scheduler'), or "
                        "tls://host:8786 with Dask's TLS settings (distributed.comm.tls.*)")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 or less would silently mean 'one worker per core')."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


# -- text from the command line -> typed values ---------------------------------------

def split_values(text: str) -> list[str]:
    """Split ``"a,b,{"x": 1, "y": 2}"`` on commas outside brackets, braces and quotes."""
    items, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [t.strip() for t in items if t.strip()]


def _convert(name: str, value):
    """Convert one grid value given as text to the type of RunConfig field ``name``."""
    if name == "column_rules":  # one canonical text per value: it becomes a study coordinate
        return ",".join(parse_rules(value))
    if not isinstance(value, str):
        return value
    default = _FIELDS[name].default if _FIELDS[name].default is not dataclasses.MISSING else _FIELDS[name].default_factory()
    text = value.strip()
    try:
        if isinstance(default, dict):
            return json.loads(text)
        if name == "train_subset":
            return None if text.lower() in ("none", "all") else int(text)
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise ConfigError(f"grid value {name}={value!r} is not a valid {type(default).__name__}") from None
    return text


def convert_values(name: str, values) -> list:
    """Parse a grid entry's values (comma text or list) for RunConfig field ``name``."""
    if name not in _FIELDS:
        raise ConfigError(f"cannot sweep unknown run option '{name}'{did_you_mean(name, list(_FIELDS))}")
    items = split_values(values) if isinstance(values, str) else list(values) if isinstance(values, (list, tuple)) else [values]
    if not items:
        raise ConfigError(f"grid '{name}' has no values")
    return [_convert(name, v) for v in items]


def parse_grid_items(items) -> dict:
    """``["lr=0.01,0.05", "batch_size=50,100"]`` -> ``{"lr": ["0.01", "0.05"], ...}`` (text values)."""
    grid = {}
    for item in items or ():
        name, eq, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not eq or not name:
            raise ConfigError(f"--grid expects NAME=V1,V2,..., got {item!r}")
        grid[name] = values
    return grid


def spec_from_text(table: dict, base: dict | None = None):
    """A SweepSpec from a ``[sweep]``-style table whose values may be command-line text."""
    from cortex_fa.spec import SweepSpec

    table = dict(table)
    table["grid"] = {name: convert_values(name, v) for name, v in (table.get("grid") or {}).items()}
    return SweepSpec.from_table(table, base)


def build_spec(args):
    """The SweepSpec from --config ([run], [sweep], [grid] tables) and the flags given."""
    from cortex_fa.config import load_toml

    table = load_toml(args.config) if args.config else {}
    if isinstance(table.get("run"), dict):  # without [run], top-level keys are run options (checked there)
        for name in table:
            if name not in TABLES and isinstance(table[name], dict):
                raise ConfigError(f"config file {args.config}: unknown table [{name}]{did_you_mean(name, TABLES)}; "
                                  f"valid: {', '.join(TABLES)}")
    base = {k: v for k, v in run_options(args, skip=("rule", "hidden", "seed", "label")).items() if k not in SECTIONS}
    sweep = dict(table.get("sweep", {}))
    sweep["grid"] = {**table.get("grid", {}), **parse_grid_items(args.grid)}
    for name in ("rules", "depths", "width", "seeds"):
        if getattr(args, name) is not None:
            sweep[name] = getattr(args, name)
    return spec_from_text(sweep, base)


def check_out(out: Path, run_dir=None) -> None:
    """Refuse, before any cluster starts, an --out or run dir in which nothing can be written."""
    from cortex_fa.cli.run import check_writable
    from cortex_fa.study import default_run_dir

    check_writable(out)
    check_dir_writable(out.parent, f"--out {out}")
    run_dir = Path(run_dir) if run_dir else default_run_dir(out)
    existing = run_dir
    while not existing.is_dir() and existing != existing.parent:
        existing = existing.parent  # write_manifest creates the missing part
    if existing.is_dir():
        check_dir_writable(existing, f"run dir {run_dir}")


def main(args) -> int:
    from cortex_fa.cluster import check_preload, load_preloads
    from cortex_fa.extras import require

    require("dask", "cortex-fa sweep")  # before user code is preloaded or anything is probed

    out = Path(args.out)
    check_out(out, args.run_dir)
    check_preload(args.scheduler, args.preload)
    args.preload = load_preloads(args.preload)  # before the spec: it validates the rule names
    spec = build_spec(args)
    return execute(spec, out, args)


def execute(spec, out: Path, args) -> int:
    """Run the sweep, print the summary table; exit status 1 if some runs failed."""
    import sys

    from cortex_fa.sweep import run_sweep

    quiet = getattr(args, "quiet", False)

    def announce(n, todo, run_dir, resuming):
        if not quiet:
            shape = f"{len(spec.rules)} rules x {len(spec.depths)} depths x {len(spec.seeds)} seeds" + "".join(
                f" x {len(v)} {k}" for k, v in spec.grid.items())
            again = f", {resuming} continuing from a checkpoint" if resuming else ""
            print(f"sweep: {n} runs ({shape}); {n - todo} already in {run_dir}{again}", file=sys.stderr)

    from cortex_fa.study import default_run_dir

    server = start_live(Path(args.run_dir) if args.run_dir else default_run_dir(out), args)
    ds, failures = run_sweep(spec, out, run_dir=args.run_dir, workers=args.workers, scheduler=args.scheduler,
                             data_dir=getattr(args, "data_dir", None), progress=not quiet, announce=announce,
                             preload=getattr(args, "preload", ()))
    if not quiet:
        from cortex_fa.cli.report import summary_table

        print(summary_table(ds))
    print(f"wrote {out} ({int((ds.status != 'missing').sum())} runs)")
    for cfg, error in failures:
        print(f"cortex-fa: run {cfg.rule} depth {cfg.depth} seed {cfg.seed} ({cfg.hash()}) failed: {error}",
              file=sys.stderr)
    if failures:
        print(f"cortex-fa: {len(failures)} run(s) failed and are marked 'missing'; re-run the same command to retry them",
              file=sys.stderr)
    keep_serving(server, args)
    return 1 if failures else 0
