"""``cortex-fa plot``: write the standard figures of a results file.

Each figure becomes a standalone interactive HTML file (Bokeh, no server
needed) and a PNG (Matplotlib, no browser needed). Files with synapse
snapshots (``--snapshots``) add ``synapses`` and ``receptive_fields``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cortex_fa.errors import BackendUnavailable, ConfigError, CortexFAError, choices_text, did_you_mean

# Kept in sync with cortex_fa.viz.figures.FIGURES, viz.gap.NAME and viz.synapses.FIGURES (not imported:
# --help stays fast).
FIGURES = ("test_error_vs_depth", "gap_vs_depth", "learning_curves", "alignment_curves", "alignment_heatmap",
           "gradient_flow", "synapses", "receptive_fields", "hybrid")


def register(subparsers) -> None:
    """Add the ``plot`` sub-command."""
    p = subparsers.add_parser(
        "plot", help="write figures (HTML and PNG) from a run or study file",
        description="Write test error vs depth, the gap to bp vs depth with its verdicts, learning curves, "
                    "alignment curves, an alignment heatmap and gradient flow as HTML and PNG files; for files "
                    "written with --snapshots also the synapse scatters and receptive fields.")
    p.add_argument("file", help="results NetCDF file (a run or a study)")
    p.add_argument("--out", default="figures", help="output folder (default: figures)")
    p.add_argument("--format", choices=("both", "html", "png"), default="both",
                   help="which files to write (default: both)")
    p.add_argument("--depth", type=int, default=None,
                   help="network depth for the per-layer figures (default: the deepest)")
    p.add_argument("--only", default=None, metavar="NAME[,NAME...]",
                   help="write only these figures: " + ", ".join(FIGURES))
    p.add_argument("--resources", choices=("inline", "cdn"), default="inline",
                   help="embed BokehJS in the HTML (inline, works offline) or link a CDN")
    p.set_defaults(func=run)


def check_out(out) -> Path:
    """Refuse, before rendering, an --out that cannot be made or written (only --out itself is created)."""
    from cortex_fa.cli.sweep import check_dir_writable

    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the figures")
    if not parent.is_dir():  # a typo should not silently create a tree of folders
        raise ConfigError(f"--out {out}: directory {parent} does not exist")
    check_dir_writable(out if out.is_dir() else parent, f"--out {out}")
    return out


def run(args) -> int:
    """Load, validate, write; print one line per written file."""
    try:
        from cortex_fa.viz.data import as_study, load_results
        from cortex_fa.viz.export import save_figures
    except ImportError as exc:
        raise BackendUnavailable(
            f"plotting needs the 'app' extra ({exc.name} missing): pip install 'cortex_fa[app]'"
        ) from exc
    only = None
    if args.only:
        only = [name.strip() for name in args.only.split(",") if name.strip()]
        for name in only:
            if name not in FIGURES:
                raise ConfigError(f"--only: unknown figure '{name}'; {choices_text(FIGURES)}"
                                  f"{did_you_mean(name, FIGURES)}")
    out = check_out(args.out)
    ds = load_results(args.file)  # loaded and validated before anything is created
    if args.depth is not None:
        depths = [int(d) for d in as_study(ds)["n_hidden"].values]
        if args.depth not in depths:
            raise ConfigError(f"--depth {args.depth} is not in the file; "
                              f"{choices_text(depths)}{did_you_mean(args.depth, depths)}")
    formats = ("html", "png") if args.format == "both" else (args.format,)
    try:
        written, skipped = save_figures(ds, out, formats=formats, resources=args.resources,
                                        depth=args.depth, only=only)
    except OSError as exc:
        raise CortexFAError(f"--out {out}: cannot write figures ({exc.strerror or exc})") from None
    for name, why in skipped.items():
        print(f"cortex-fa plot: skipped {name}: {why}", file=sys.stderr)
    for path in written:
        print(path)
    return 0
