"""The project's interleaved A/B timing harness.

Timing two programs one after the other on a shared machine measures the
machine as much as the programs: a neighbour's job, a thermal or frequency
change, or a noisy hypervisor shifts whole minutes. This harness runs the
candidates in *rounds*, ``A B C A B C ...`` (the starting candidate rotates
from round to round so none is always first after a pause), times every run,
and reports

* per candidate: the median seconds per round and the median examples/s;
* per pair: the median of the *per-round* ratios (:func:`speedup`). Both runs of a round saw
  nearly the same machine, so this ratio is robust to drift that moves the
  medians themselves.

Every round also records the process CPU time over wall time (``cpu_ratio``):
with ``t`` BLAS threads on an idle machine it is close to ``t``; much lower
means the cores were shared with something else and the round is suspect.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Candidate:
    """One program to time.

    Parameters
    ----------
    name : str
        Label in the results.
    run : callable
        ``run() -> int``: does one round of work and returns the number of
        examples it processed (use 1 for work without examples).
    """

    name: str
    run: Callable[[], int]


@dataclass
class Timing:
    """The rounds of one candidate."""

    name: str
    seconds: list = field(default_factory=list)
    examples: list = field(default_factory=list)
    cpu_ratio: list = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rates(self) -> list:
        return [n / s for n, s in zip(self.examples, self.seconds)]

    @property
    def examples_per_s(self) -> float:
        return statistics.median(self.rates)

    def to_dict(self) -> dict:
        return {"median_s": self.median_s, "min_s": min(self.seconds), "examples_per_round": self.examples[0],
                "examples_per_s": self.examples_per_s, "seconds": self.seconds,
                "cpu_ratio": self.cpu_ratio}


def interleave(candidates: list[Candidate], rounds: int = 5, warmup: int = 1) -> dict[str, Timing]:
    """Time ``candidates`` in interleaved rounds; return their :class:`Timing` by name.

    Parameters
    ----------
    candidates : list of Candidate
    rounds : int
        Timed rounds per candidate.
    warmup : int
        Untimed rounds first (caches, BLAS thread start-up, lazy allocation).
    """
    for _ in range(warmup):
        for c in candidates:
            c.run()
    out = {c.name: Timing(c.name) for c in candidates}
    k = len(candidates)
    for r in range(rounds):
        for c in candidates[r % k:] + candidates[:r % k]:
            cpu0, t0 = time.process_time(), time.perf_counter()
            n = c.run()
            dt = time.perf_counter() - t0
            out[c.name].seconds.append(dt)
            out[c.name].examples.append(n)
            out[c.name].cpu_ratio.append((time.process_time() - cpu0) / dt)
    return out


def speedup(timings: dict[str, Timing], a: str, b: str) -> float:
    """How many times faster ``a`` is than ``b``: the median over rounds of rate(a) / rate(b)."""
    return statistics.median(ra / rb for ra, rb in zip(timings[a].rates, timings[b].rates))


@contextlib.contextmanager
def threads(n: int):
    """Limit every BLAS/OpenMP pool in the process (numpy, scipy, torch) to ``n`` threads."""
    # threadpoolctl limits only the libraries loaded when the limit is set:
    # load numpy's and scipy's OpenBLAS (cortex_fa uses scipy's) first.
    import numpy  # noqa: F401
    import scipy.linalg.blas  # noqa: F401

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the benchmark still runs; the JSON says the limit was not applied
        limiter = contextlib.nullcontext()
    else:
        limiter = threadpool_limits(limits=n)
    torch_before = None
    torch = _loaded_torch()
    if torch is not None:
        torch_before = torch.get_num_threads()
        torch.set_num_threads(n)
    with limiter:
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(torch_before)


def _loaded_torch():
    import sys

    return sys.modules.get("torch")


def blas_info() -> list[dict]:
    """The BLAS/OpenMP libraries loaded in this process and their thread counts (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl not installed: thread limits not applied or reported"}]
    keep = ("internal_api", "prefix", "version", "architecture", "num_threads", "threading_layer")
    return [{k: info.get(k) for k in keep} for info in threadpool_info()]


def environment() -> dict:
    """Machine facts worth keeping next to the numbers."""
    import numpy as np

    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                         "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    info = {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
            "processor": _cpu_model(), "cpu_count": os.cpu_count(), "env": env,
            "loadavg_1min": os.getloadavg()[0]}
    torch = _loaded_torch()
    if torch is not None:
        info["torch"] = torch.__version__
    return info


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor()
