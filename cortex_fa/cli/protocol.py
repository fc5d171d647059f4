"""``cortex-fa protocol``: run a preset's declared protocol (select rates, run the study in chunks, combine).

Examples
--------
::

    cortex-fa protocol select depth_protocol --depths 1,2 --out sel.nc --quick
    cortex-fa protocol study depth_protocol --selection sel.nc --depths 1,2 --out study_d12.nc --quick
    cortex-fa protocol combine study_d12.nc study_d3.nc --out study.nc
    cortex-fa protocol cost sel.nc study_d12.nc
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cortex_fa.cli.sweep import add_dask_options, check_out
from cortex_fa.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "protocol", help="run a preset's declared protocol: choose rates per rule and depth, run the study, combine",
        description="The steps of a protocol preset (a [protocol] table, e.g. depth_protocol): 'select' runs "
                    "the rate grid on the selection seeds, 'study' runs every seed at the chosen rates (the "
                    "selection seeds' runs are taken from the selection file), 'combine' joins per-depth chunks.",
    )
    sub = p.add_subparsers(dest="protocol_command", metavar="STEP", parser_class=type(p))
    for name, text in (("select", "run the selection sweep (rules x depths x selection seeds x rates)"),
                       ("study", "run the study at the rates chosen by a selection file")):
        q = sub.add_parser(name, help=text, description=text)
        q.add_argument("preset", metavar="PRESET", help="protocol preset name or .toml file, e.g. depth_protocol")
        q.add_argument("--depths", help="comma-separated depths of this chunk (default: the preset's)")
        q.add_argument("--out", required=True, help="file to write")
        q.add_argument("--quick", action="store_true", help="the preset's [quick] variant (minutes)")
        q.add_argument("--run-dir", help="directory of the per-run files (default: <out stem>.runs)")
        add_dask_options(q)
        q.add_argument("--data-dir", help="MNIST directory as seen by the workers (default: their cache)")
        q.add_argument("--quiet", action="store_true", help="no progress bar")
        if name == "study":
            q.add_argument("--selection", required=True, metavar="SEL.nc", help="the file 'protocol select' wrote")
        q.set_defaults(func=select_main if name == "select" else study_main)
    q = sub.add_parser("combine", help="combine per-depth, per-seed or per-grid-value study chunks (or a grid of "
                                       "them) into one study file",
                       description="Join study files that hold different depths of one study (a protocol "
                                   "study run depth by depth), or, at the same depths, different seeds (any "
                                   "sweep run with --seeds in chunks), or different values of one swept option (a grid "
                                   "extended later with --grid NAME=...), or a grid of such chunks (one per depth and "
                                   "seed).")
    q.add_argument("parts", nargs="+", metavar="CHUNK.nc", help="study chunks (cortex-fa protocol study --out ...)")
    q.add_argument("--out", required=True, help="study file to write")
    q.set_defaults(func=combine_main)
    q = sub.add_parser("cost", help="training time of a study's chunks, each run counted once",
                       description="Sum the runs' own training seconds (evaluation excluded) chunk by chunk; a run "
                                   "in several files (a selection seed's run reused by the study) counts once, in "
                                   "the first file given that holds it.")
    q.add_argument("parts", nargs="+", metavar="FILE.nc", help="selection and study files, in the order to count them")
    q.set_defaults(func=cost_main)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _depths(text):
    from cortex_fa.spec import parse_list

    return None if text is None else tuple(parse_list(text, "--depths", int))


def _load(args):
    from cortex_fa import presets
    from cortex_fa.protocol import check_protocol

    preset = presets.load(args.preset)
    if not preset.protocol:
        raise ConfigError(f"preset {preset.name} declares no protocol ([protocol] table); "
                          f"run it with cortex-fa reproduce {preset.name}")
    return preset, check_protocol(preset)


def _sweep(spec, out: Path, args):
    from cortex_fa.sweep import run_sweep

    def announce(n, todo, run_dir, resuming):
        if not args.quiet:
            again = f", {resuming} continuing from a checkpoint" if resuming else ""
            print(f"protocol: {n} runs; {n - todo} already in {run_dir}{again}", file=sys.stderr)

    ds, failures = run_sweep(spec, out, run_dir=args.run_dir, workers=args.workers, scheduler=args.scheduler,
                             data_dir=args.data_dir, progress=not args.quiet, announce=announce)
    for cfg, error in failures:
        print(f"cortex-fa: run {cfg.study_label} depth {cfg.depth} seed {cfg.seed} lr {cfg.lr:g} ({cfg.hash()}) "
              f"failed: {error}", file=sys.stderr)
    return ds, failures


def _stamp(ds, preset, protocol, args, stage):
    ds.attrs.update(protocol=json.dumps(protocol, sort_keys=True), protocol_preset=preset.name,
                    protocol_stage=stage, protocol_quick=int(bool(args.quick)))
    return ds


def chosen_table(choice) -> str:
    from cortex_fa.cli.tables import render_text, wide

    return render_text(wide(choice["chosen_lr"], "n_hidden", "g", "chosen_lr",
                            "Learning rate chosen per rule and depth (best eligible validation score of the grid)"))


def select_main(args) -> int:
    from cortex_fa.extras import require
    from cortex_fa.protocol import choose_rates, selection_spec
    from cortex_fa.results import save_results

    preset, protocol = _load(args)
    spec = selection_spec(preset, quick=args.quick, depths=_depths(args.depths))
    require("dask", "cortex-fa protocol select")
    out = Path(args.out)
    check_out(out, args.run_dir)
    ds, failures = _sweep(spec, out, args)
    save_results(_stamp(ds, preset, protocol, args, "selection"), out)
    print(chosen_table(choose_rates(ds)))
    print(f"wrote {out} ({int((ds.status != 'missing').sum())} runs)")
    return 1 if failures else 0


def study_main(args) -> int:
    from cortex_fa.extras import require
    from cortex_fa.protocol import attach_choice, choose_rates, reuse_selection, study_spec
    from cortex_fa.results import open_results, save_results

    preset, protocol = _load(args)
    selection = open_results(args.selection)
    stamp = (selection.attrs.get("protocol_preset"), selection.attrs.get("protocol_stage"),
             int(selection.attrs.get("protocol_quick", -1)))
    if stamp != (preset.name, "selection", int(bool(args.quick))):
        raise ConfigError(f"--selection {args.selection} is not a selection of preset {preset.name}"
                          f"{' with --quick' if args.quick else ''} (it says preset={stamp[0]}, stage={stamp[1]}, "
                          f"quick={stamp[2]}); make it with cortex-fa protocol select")
    if json.loads(selection.attrs["protocol"]) != json.loads(json.dumps(protocol)):
        raise ConfigError(f"--selection {args.selection} was made under another [protocol] of {preset.name}; select again")
    choice = choose_rates(selection)
    depths = _depths(args.depths)
    spec_all = study_spec(preset, choice, quick=args.quick, depths=depths, reuse=False)
    spec_new = study_spec(preset, choice, quick=args.quick, depths=depths, reuse=True)
    out = Path(args.out)
    check_out(out, args.run_dir)
    failures = []
    new = None
    if spec_new is not None:
        require("dask", "cortex-fa protocol study")
        new, failures = _sweep(spec_new, out, args)
    study = reuse_selection(selection, choice, spec_all, new)
    study = attach_choice(_stamp(study, preset, protocol, args, "study"), choice, protocol, preset.name)
    save_results(study, out)
    from cortex_fa.cli.report import summary_table

    print(chosen_table(choice.sel(n_hidden=list(spec_all.depths))))
    print(summary_table(study))
    print(f"wrote {out} ({int((study.status != 'missing').sum())} runs; seeds {', '.join(map(str, spec_all.seeds))}, "
          f"of which {', '.join(map(str, protocol['selection_seeds']))} from the selection)")
    return 1 if failures else 0


def combine_main(args) -> int:
    from cortex_fa.chunks import chunk_plan, combine_planned
    from cortex_fa.cli.run import check_writable
    from cortex_fa.results import open_results, save_results

    out = Path(args.out)
    check_writable(out)
    parts, dims = chunk_plan(open_results(p) for p in args.parts)
    study = combine_planned(parts, dims)
    save_results(study, out)
    joined = "; ".join(f"{'depths' if d == 'n_hidden' else d} {', '.join(map(str, study[d].values))}" for d in dims)
    print(f"wrote {out} ({int((study.status != 'missing').sum())} runs; {joined})")
    return 0


def cost_main(args) -> int:
    from cortex_fa.results import open_results
    from cortex_fa.training_time import hours_minutes, training_time

    rows = training_time((Path(p).name, open_results(p)) for p in args.parts)
    width = max(len("chunk"), *(len(r["label"]) for r in rows))
    print(f"{'chunk':<{width}}  {'stage':<9}  {'depths':<6}  {'runs':>4}  {'counted':>7}  training")
    for r in rows:
        depths = ",".join(map(str, r["depths"]))
        print(f"{r['label']:<{width}}  {r['stage']:<9}  {depths:<6}  {r['runs']:>4}  {r['counted']:>7}  "
              f"{hours_minutes(r['seconds'])}")
    total = sum(r["seconds"] for r in rows)
    print(f"all: {hours_minutes(total)} of training in {sum(r['counted'] for r in rows)} runs "
          "(each run's own training seconds, evaluation excluded; the wall clock of w workers is about this / w)")
    return 0
