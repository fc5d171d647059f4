"""Peak resident memory of a full ``cortex-fa run`` (and of its parts).

Run::

    python -m benchmarks.memory [--quick] [--out benchmarks/results/memory.json]

Each measurement is a fresh child process; its peak RSS is the kernel's
``ru_maxrss`` for that child (``os.wait4``), so nothing of this process counts.

* ``imports``: Python with cortex_fa's training stack imported (the floor).
* ``mnist``: the same plus ``load_mnist()`` (the data kept as uint8).
* ``run``: ``cortex-fa run`` of 784-1000-10, batch 64, one epoch, default
  metrics, writing its NetCDF file (``--quick``: 6,000 training images).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).parent / "results" / "memory.json"
IMPORTS = "import cortex_fa.training, cortex_fa.results, cortex_fa.data, cortex_fa.cli"
MNIST = IMPORTS + "; from cortex_fa.data import load_mnist; d = load_mnist(progress=False)"


def peak_rss(cmd: list[str]) -> dict:
    """Run ``cmd`` to completion; return its peak RSS (MiB), wall time and exit code."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    result = {"command": " ".join(cmd), "peak_rss_mib": usage.ru_maxrss / 1024, "seconds": time.perf_counter() - t0,
              "exit_code": proc.returncode}
    if proc.returncode:
        result["stderr_tail"] = err[-2000:]
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="train on 6,000 images instead of 60,000")
    p.add_argument("--hidden", default="1000")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(sys.executable).with_name("cortex-fa")  # the console script of this environment
        cli = [str(script)] if script.exists() else [py, "-m", "cortex_fa.cli"]
        run_cmd = cli + ["run", "--hidden", args.hidden, "--batch-size", "64", "--quiet",
                         "--out", str(Path(tmp) / "run.nc")]
        if args.quick:
            run_cmd += ["--train-subset", "6000"]
        result = {"imports": peak_rss([py, "-c", IMPORTS]),
                  "mnist": peak_rss([py, "-c", MNIST]),
                  "run": peak_rss(run_cmd)}
    result["run"]["command"] = result["run"]["command"].replace(tmp, "$TMP")
    result["goal_mib"] = 400
    result["quick"] = args.quick
    for name, row in result.items():
        if isinstance(row, dict):
            print(f"{name:8s} peak RSS {row['peak_rss_mib']:7.1f} MiB  ({row['seconds']:.1f} s)", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if any(isinstance(r, dict) and r.get("exit_code") for r in result.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
