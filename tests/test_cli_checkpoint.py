"""`cortex-fa run --checkpoint/--resume` and Ctrl-C, on the real command line and the real MNIST.

The reference is an unbroken run of the same command: a run killed with
kill -9 (or stopped with SIGINT) and resumed must write the same final file,
every variable but the training clock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

import cortex_fa as cfa
from test_sweep_dask import wait_for

pytestmark = pytest.mark.mnist

RUN = ["run", "--rule", "fa", "--column-rules", "fa,bp", "--hidden", "200,100", "--epochs", "4",
       "--train-subset", "12000", "--batch-size", "50", "--lr", "0.1", "--seed", "5", "--quiet"]


def cli(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cortex_fa.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def same_file(a: Path, b: Path) -> None:
    x, y = cfa.open_results(a), cfa.open_results(b)
    xr.testing.assert_identical(x.drop_vars("wall_time").drop_attrs(), y.drop_vars("wall_time").drop_attrs())
    for key in ("config", "config_hash", "status", "column_rules", "random_streams"):
        assert x.attrs[key] == y.attrs[key], key


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    out = tmp_path_factory.mktemp("unbroken") / "run.nc"
    done = subprocess.run([sys.executable, "-m", "cortex_fa.cli", *RUN, "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return out


def test_kill_9_then_resume_writes_the_same_file(tmp_path, unbroken):
    out, ckpt = tmp_path / "run.nc", tmp_path / "run.ckpt.nc"
    proc = cli(*RUN, "--out", str(out), "--checkpoint", str(ckpt))
    wait_for(lambda: ckpt.exists() or proc.poll() is not None, 120, "the first checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and not out.exists(), "the run ended before it was killed"
    killed_at = cfa.Simulation.restore(ckpt, progress=False).step
    assert 0 < killed_at < 4 * 240
    done = subprocess.run([sys.executable, "-m", "cortex_fa.cli", *RUN, "--out", str(out), "--checkpoint", str(ckpt),
                           "--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    same_file(out, unbroken)


def test_ctrl_c_writes_an_interrupted_file_exits_130_and_resumes(tmp_path, unbroken):
    out, ckpt = tmp_path / "run.nc", tmp_path / "ckpt.nc"
    proc = cli(*RUN, "--out", str(out), "--checkpoint", str(ckpt))
    partial = tmp_path / "run.partial.nc"
    wait_for(lambda: partial.exists() or proc.poll() is not None, 120, "training to start")
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "Traceback" not in err
    ds = cfa.open_results(out)
    assert ds.attrs["status"] == "interrupted" and 0 < int(ds.step[-1]) < 4 * 240
    assert not partial.exists()
    done = subprocess.run([sys.executable, "-m", "cortex_fa.cli", *RUN, "--out", str(out), "--checkpoint", str(ckpt),
                           "--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    same_file(out, unbroken)


@pytest.mark.parametrize("args, message", [
    (["--resume"], "give --checkpoint PATH.nc too"),
    (["--checkpoint", "ckpt.txt"], "--checkpoint ckpt.txt: results files are NetCDF"),
    (["--checkpoint", "same.nc", "--out", "same.nc"], "is the --out file"),
])
def test_checkpoint_flags_refuse_bad_input_in_one_line(tmp_path, args, message):
    done = subprocess.run([sys.executable, "-m", "cortex_fa.cli", "run", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    ckpt = tmp_path / "c.nc"
    small = ["run", "--hidden", "8", "--epochs", "1", "--train-subset", "300", "--quiet"]
    assert subprocess.run([sys.executable, "-m", "cortex_fa.cli", *small, "--out", str(tmp_path / "a.nc"),
                           "--checkpoint", str(ckpt)], timeout=300).returncode == 0
    before = ckpt.read_bytes()
    done = subprocess.run([sys.executable, "-m", "cortex_fa.cli", *small, "--lr", "0.3", "--out",
                           str(tmp_path / "b.nc"), "--checkpoint", str(ckpt), "--resume"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "is of another run (lr 0.05 there, 0.3 here)" in done.stderr
    assert ckpt.read_bytes() == before and not (tmp_path / "b.nc").exists()
