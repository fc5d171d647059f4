"""What writing partial results while training costs (``NAME.partial.nc``, issue 14).

Run::

    python -m benchmarks.live_overhead [--quick] [--rounds N] [--out benchmarks/results/live_overhead.json]

One epoch of ``cortex_fa.train`` (``fa``, 784-1000-10, ReLU, batch 64, the
default logging schedule and metrics), with a
:class:`cortex_fa.live.PartialWriter` at its defaults ("live on") and without
("live off"), interleaved A B A B by :mod:`benchmarks.harness`. Reported: the
median of the per-round ratios, and the writer's own time (its writes, timed
inside the run) as a share of the run: the second does not depend on what
else the machine is doing. ``--quick``: 6,000 images, 2 rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks import harness

DEFAULT_OUT = Path(__file__).parent / "results" / "live_overhead.json"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.live_overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="6,000 training images and 2 rounds")
    p.add_argument("--rounds", type=int, default=None, help="A/B rounds (default 7; --quick 2)")
    p.add_argument("--hidden", type=int, default=1000)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    from cortex_fa.config import RunConfig
    from cortex_fa.data import load_mnist
    from cortex_fa.live import PartialWriter
    from cortex_fa.training import train

    data = load_mnist(progress=False)
    cfg = RunConfig(rule="fa", hidden=(args.hidden,), activation="relu", batch_size=64, epochs=1,
                    train_subset=6000 if args.quick else None)
    rounds = args.rounds or (2 if args.quick else 7)
    n = cfg.train_subset or len(data.train_labels)
    writers = []
    with tempfile.TemporaryDirectory() as tmp:
        def live():
            writer = PartialWriter(Path(tmp) / "run.partial.nc")
            writers.append(writer)  # the warm-up round's too: dropped below
            train(cfg, data, progress=False, on_log=writer)
            writer.discard()
            return n

        def plain():
            train(cfg, data, progress=False)
            return n

        with harness.threads(1):
            timings = harness.interleave([harness.Candidate("live on", live),
                                          harness.Candidate("live off", plain)], rounds=rounds, warmup=1)
    on, off = timings["live on"], timings["live off"]
    writers = writers[-rounds:]  # the warm-up round paid the one-time imports of the NetCDF writer
    result = {
        "config": f"fa 784-{args.hidden}-10, batch 64, 1 epoch of {n} images, default logging, "
                  "PartialWriter defaults",
        "environment": harness.environment(),
        "live_on_s": on.median_s, "live_off_s": off.median_s,
        "overhead": harness.speedup(timings, "live off", "live on") - 1.0,
        "rounds": {"on": on.seconds, "off": off.seconds},
        "writes_per_run": statistics.median(w.writes for w in writers),
        "write_s_per_run": statistics.median(w.seconds for w in writers),
        "write_share": statistics.median(w.seconds for w in writers) / on.median_s,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"live writing: {100 * result['overhead']:+.1f} % (median of {rounds} paired rounds); "
          f"{result['writes_per_run']:.0f} writes taking {100 * result['write_share']:.2f} % of the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
