"""``cortex-fa reproduce``: run a reference preset and compare with the published numbers.

Examples
--------
::

    cortex-fa reproduce                         # list the presets
    cortex-fa reproduce depth_study --quick     # minutes on 2 cores
    cortex-fa reproduce lillicrap2016 --out lillicrap.nc --workers 2
    cortex-fa reproduce nokland2016_dfa --compare nokland.nc   # a study made earlier, e.g. combined chunks
"""

from __future__ import annotations

import sys
from pathlib import Path

from cortex_fa.cli.sweep import add_dask_options, check_out, execute


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="run a reference preset (models/*.toml) and compare with published numbers",
        description="Run a preset as a sweep (resumable, on Dask) and print published vs measured test error. "
                    "Without NAME, list the presets.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="preset name, e.g. depth_study or lillicrap2016")
    p.add_argument("--quick", action="store_true", help="the preset's [quick] variant (smaller, minutes)")
    p.add_argument("--out", help="study file (default <NAME>.nc or <NAME>.quick.nc)")
    p.add_argument("--run-dir", help="directory of the per-run files (default: <out stem>.runs)")
    add_dask_options(p)
    p.add_argument("--data-dir", help="MNIST directory as seen by the workers (default: their cache)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--compare", metavar="STUDY.nc", default=None,
                   help="run nothing: compare a study made earlier (e.g. seed chunks joined by cortex-fa protocol "
                        "combine) with the preset's published numbers")
    p.set_defaults(func=main)


def comparison_table(preset, study) -> str:
    """Published vs measured, one line per rule with a published number."""
    from cortex_fa import reproduction

    rows = preset.compare(study)
    pub = preset.published
    if not rows:  # an ablation or a study: nothing published to compare with
        return f"{preset.title}\nno published numbers: preset {preset.name} is a study, not a reproduction"
    head = [f"{preset.title}",
            f"published: {pub.get('source', '?')}",
            f"{pub.get('metric', 'selected')} test error (%) at depth {rows[0]['depth']}; "
            "measured = mean [95% t-interval] over seeds; shortfall = measured - published (pp); verdict: "
            "reproduced when the whole interval of measured - published lies within +-margin (the paper's spread, "
            "else 0.3 pp), not reproduced when it lies wholly outside, else undetermined",
            f"{'rule':>8} {'published':>14} {'measured':>24} {'seeds':>5} {'shortfall':>10} {'margin':>7}  verdict"]
    if pub.get("kind") == reproduction.PEER:
        head.insert(2, "the reference is a peer measurement (other software), not a publication: "
                       "it is matched, not reproduced, and never counted among reproduced papers")
    for r in rows:
        have = r["n"] > 0 and r["mean"] == r["mean"]
        interval = f" [{r['lo']:.2f}, {r['hi']:.2f}]" if have and r["lo"] == r["lo"] else ""
        measured = f"{r['mean']:.2f}{interval}" if have else "not run"
        short = f"{r['shortfall']:+.2f}" if have else "-"
        spread = r.get("published_spread", float("nan"))
        published = f"{r['published']:.2f}" + (f" +- {spread:.2f}" if spread == spread else "")
        verdict = reproduction.label(r["verdict"], r["kind"]) if have else "-"
        head.append(f"{r['rule']:>8} {published:>14} {measured:>24} {r['n']:>5} {short:>10} {r['margin']:>7.2f}  "
                    f"{verdict}")
    if pub.get("notes"):
        head.append(f"notes: {pub['notes']}")
    return "\n".join(head)


def main(args) -> int:
    from cortex_fa import presets
    from cortex_fa.errors import ConfigError

    catalog = presets.discover()
    if not catalog.files and not str(args.name or "").endswith(".toml"):
        raise ConfigError(f"no presets found: no .toml files in {' or '.join(catalog.searched)}; "
                          f"reinstall cortex_fa or set {presets.ENV} to a folder of presets")
    for note in catalog.notes:
        if not args.name or note.startswith(f"preset {args.name}:"):
            print(f"cortex-fa reproduce: note: {note}", file=sys.stderr)
    if not args.name:
        loaded = []
        for name, path in catalog.files.items():  # a malformed file: exit 2 before listing
            try:
                loaded.append(presets.load(name))
            except ConfigError as exc:  # name the file's folder too: it may be $CORTEX_FA_MODELS_DIR
                raise ConfigError(str(exc) if str(path) in str(exc) else f"{exc} (in {path})") from None
        for preset in loaded:
            print(f"{preset.name:<18} {preset.title}")
        return 0
    preset = presets.load(args.name)
    if preset.protocol:
        raise ConfigError(f"preset {preset.name} declares a protocol (rates chosen per rule and depth before the "
                          f"study); run it with cortex-fa protocol select {preset.name} ... and cortex-fa protocol "
                          "study (see docs/cli.md#protocol)")
    if args.compare:  # a study made earlier, perhaps in chunks over several sessions
        from cortex_fa.results import open_results

        print(comparison_table(preset, open_results(args.compare)))
        return 0
    spec = preset.spec(quick=args.quick)
    from cortex_fa.extras import require

    require("dask", "cortex-fa reproduce NAME (a sweep)")  # listing needs no extra; running one does
    out = Path(args.out or f"{preset.name}{'.quick' if args.quick else ''}.nc")
    check_out(out)
    status = execute(spec, out, args)
    from cortex_fa.results import open_results

    print()
    print(comparison_table(preset, open_results(out)))
    print(f"\nmore tables: cortex-fa report {out}", file=sys.stderr)
    return status
