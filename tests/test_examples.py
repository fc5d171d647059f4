"""Every script in examples/ runs in quick mode and prints the numbers it computes.

Each example is run as a subprocess from a temporary directory (as a user
would, with the real MNIST); the test checks exit status 0, the labels of the
printed tables, and that the printed numbers are in a sane range.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TIMEOUT = 600  # seconds; each example takes well under a minute on an idle 2-core machine


def _numbers(pattern: str, text: str) -> list[float]:
    return [float(x) for x in re.findall(pattern, text, re.M)]


def check_quickstart(out):
    assert "angle to backprop's delta, per layer" in out
    assert re.search(r"^\s+0\s+0\.00\s+nan", out, re.M), "step 0 is logged before any update"
    (acc,) = _numbers(r"^test accuracy (\d\.\d+)", out)
    assert 0.8 < acc <= 1.0
    first = _numbers(r"^\s+0\s+0\.00\s+nan\s+(\d+\.\d)", out)[0]
    last = _numbers(r"^final delta alignment per layer:\s+(\d+\.\d)", out)[0]
    assert 80 < first < 100 and last < first - 5, "FA's delta alignment in column 1 falls from about 90 degrees"


def check_custom_rule(out):
    assert re.search(r"^registered rules: .*\bsparse_fa\b", out, re.M)
    accs = dict(re.findall(r"^(fa|sparse_fa)\s+[\d.]+\s+(\d\.\d+)", out, re.M))
    rows = re.findall(r"^(fa|sparse_fa)\s+([\d.]+)\s+(\d\.\d+)", out, re.M)
    assert [r[0] for r in rows] == ["fa", "sparse_fa", "sparse_fa"] and accs
    assert all(0.7 < float(r[2]) <= 1.0 for r in rows)


def check_sign_symmetry(out):
    rows = {m[0]: [float(x) for x in m[1:]] for m in
            re.findall(r"^(bp|fa|usf|frsf|brsf)\s+(\d\.\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out, re.M)}
    assert set(rows) == {"bp", "fa", "usf", "frsf", "brsf"}
    assert rows["bp"][1] == 0.0 and rows["bp"][2] == 0.0
    assert 27 < rows["usf"][1] < 33, "uSF starts 30 degrees from W^T for uniform W"
    assert 38 < rows["frsf"][1] < 45, "frSF starts arccos(3/4) = 41 degrees from W^T"
    assert 80 < rows["fa"][1] < 100
    assert all(0.5 < r[0] <= 1.0 for r in rows.values())


def check_dfa_vs_fa(out):
    assert "test accuracy after each epoch" in out and "convergence:" in out
    per_epoch = re.findall(r"^(bp|fa|dfa)\s+(\d\.\d{4})\s+(\d\.\d{4})\s+(\d\.\d{4})$", out, re.M)
    assert len(per_epoch) == 3 and all(0.7 < float(a) <= 1 for row in per_epoch for a in row[1:])
    assert len(re.findall(r"^(bp|fa|dfa)\s+\d+\.\d\d\s", out, re.M)) == 3, "seconds per epoch per rule"


def check_early_alignment(out):
    assert "small centred init" in out and "Xavier init" in out
    assert re.search(r"^small: first step with delta alignment in column 1 below 60 deg: \d+", out, re.M)
    accs = _numbers(r"^test accuracy after the epoch: (\d\.\d+)", out)
    assert len(accs) == 2 and all(0.7 < a <= 1 for a in accs)
    steps = [int(s) for s in re.findall(r"^\s+(\d+)\s+\d\.\d{3}\s", out, re.M)]
    assert steps[:6] == [0, 1, 2, 4, 8, 16], "log-spaced steps in the first epoch"


def check_depth_study(out):
    assert re.search(r"^18 runs: rules bp,fa,dfa", out, re.M)
    assert "final test error (%)" in out
    rows = re.findall(r"^(bp|fa|dfa)\s+(\d+\.\d\d)", out, re.M)
    assert [r[0] for r in rows] == ["bp", "fa", "dfa"] and all(0 < float(r[1]) < 60 for r in rows)
    assert re.search(r"^breaking depth of fa: (\d|none)", out, re.M)
    assert re.search(r"^breaking depth of dfa: (\d|none)", out, re.M)


def check_dask_cluster_sweep(out):
    assert re.search(r"^started a LocalCluster with 2 workers at tcp://", out, re.M)
    assert re.search(r"^4 runs, 0 failed; wrote ", out, re.M)
    rows = re.findall(r"^(fa|dfa)\s+(\d)\s+(\d)\s+(\d\.\d{4})\s+ok$", out, re.M)
    assert len(rows) == 4 and all(0.5 < float(r[3]) <= 1 for r in rows)


def check_brian2_feedback_alignment(out):
    assert re.search(r"^Brian2 [\d.]+ \((cpp_standalone|cython|numpy)\): tau 10 ms, dt 30 ms, 8 steps \(240 ms\) per digit, "
                     r"2000 digits$", out, re.M)
    rows = re.findall(r"^\s*(\d+)\s+(\d\.\d{3}|-)\s+(\d+\.\d)\s+(\d+\.\d)$", out, re.M)
    assert rows[0][0] == "0" and rows[-1][0] == "2000" and len(rows) == 11
    assert 80 < float(rows[0][2]) < 100 and float(rows[-1][2]) < float(rows[0][2]) - 10
    (acc,) = _numbers(r"^test accuracy (\d\.\d+)$", out)
    assert 0.8 < acc <= 1.0 and re.search(r"^wrote brian2_fa\.png$", out, re.M)


EXAMPLE_CHECKS = {
    "brian2_feedback_alignment.py": (check_brian2_feedback_alignment, False),
    "quickstart.py": (check_quickstart, False),
    "custom_rule.py": (check_custom_rule, False),
    "sign_symmetry.py": (check_sign_symmetry, False),
    "dfa_vs_fa.py": (check_dfa_vs_fa, False),
    "early_alignment.py": (check_early_alignment, False),
    "depth_study.py": (check_depth_study, True),
    "dask_cluster_sweep.py": (check_dask_cluster_sweep, True),
}


def test_every_example_is_there():
    missing = [name for name in EXAMPLE_CHECKS if not (EXAMPLES / name).is_file()]
    assert not missing, missing


def _params():
    out = []
    for name, (_, needs_sweep) in EXAMPLE_CHECKS.items():
        marks = [pytest.mark.dask] if needs_sweep else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.mark.mnist
@pytest.mark.slow
@pytest.mark.parametrize("name", _params())
def test_example(name, tmp_path):
    check, _ = EXAMPLE_CHECKS[name]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stderr[-3000:]}"
    print(proc.stdout)
    check(proc.stdout)


@pytest.mark.parametrize("name", sorted(EXAMPLE_CHECKS))
def test_example_has_a_full_flag_and_help(name):
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), "--help"], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "--full" in proc.stdout
