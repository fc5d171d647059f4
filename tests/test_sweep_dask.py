"""Real sweeps on Dask: a LocalCluster, a separate scheduler with a worker killed mid-sweep,
resuming after the sweep process itself was killed, and an unreachable scheduler.

Every process started here is in its own session and is killed by process group in a
``finally`` block; workers also carry ``--death-timeout`` and the scheduler ``--idle-timeout``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cortex_fa.cli import main
from cortex_fa.results import open_results
from cortex_fa.sweep import SweepSpec, run_sweep

pytestmark = pytest.mark.dask

SPEC = SweepSpec(rules=("bp", "fa"), depths=(1, 2), seeds=(0, 1), width=32,
                 base={"train_subset": 1000, "epochs": 1, "probe_size": 200})
ARGS = ["--rules", "bp,fa", "--depths", "1,2", "--seeds", "0,1", "--width", "32",
        "--train-subset", "1000", "--epochs", "1", "--probe-size", "200", "--quiet"]
HASHES = {c.hash() for c in SPEC.configs()}
TIMING = ("wall_time", "created")


def finished(run_dir: Path) -> list[Path]:
    """Finished run files: ``<hash>.nc``, not the ``<hash>.partial.nc`` of runs in flight."""
    return [p for p in Path(run_dir).glob("*.nc") if not p.name.endswith(".partial.nc")]


def run_files(run_dir: Path) -> set[str]:
    return {p.stem for p in finished(run_dir)}


def assert_same_results(a, b):
    """Equal up to timing: same coords and every non-timing variable identical."""
    assert dict(a.sizes) == dict(b.sizes)
    for name in a.coords:
        np.testing.assert_array_equal(a[name].values, b[name].values)
    for name in a.data_vars:
        if name not in TIMING:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def wait_for(predicate, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the process and its children (nanny -> worker)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def spawn(args, cwd, log):
    return subprocess.Popen(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted sweep on a LocalCluster with 2 worker processes."""
    out = tmp_path_factory.mktemp("reference") / "study.nc"
    study, failures = run_sweep(SPEC, out, workers=2, progress=False)
    assert failures == []
    return study, out


@pytest.mark.mnist
def test_local_cluster_sweep(reference):
    study, out = reference
    assert dict(study.sizes) == {"rule": 2, "n_hidden": 2, "seed": 2, "step": study.sizes["step"], "layer": 3}
    assert list(study.rule.values) == ["bp", "fa"] and list(study.n_hidden.values) == [1, 2]
    assert list(study.seed.values) == [0, 1] and list(study.layer.values) == [1, 2, 3]
    assert (study.status == "ok").all() and study.epoch.dims == ("step",)
    run_dir = out.with_name("study.runs")
    assert run_files(run_dir) == HASHES and len(list(run_dir.glob("*.nc"))) == 8
    assert set(study.config_hash.values.ravel()) == HASHES
    assert json.loads((run_dir / "sweep.json").read_text())["spec"] == SPEC.to_dict()
    assert not list(run_dir.glob(".*.tmp"))
    # depth 1 has layers 1-2 only: layer 3 is padding
    assert np.isnan(study.delta_norm.sel(n_hidden=1, layer=3)).all()
    assert_same_results(study, open_results(out))
    assert_same_results(study, open_results(run_dir))


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-threaded workers, each a separate process group on 127.0.0.1."""
    procs, log = [], open(tmp_path / "cluster.log", "wb")
    info = tmp_path / "scheduler.json"
    try:
        procs.append(spawn([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                            "--port", "0", "--no-dashboard", "--scheduler-file", str(info),
                            "--idle-timeout", "300"], tmp_path, log))
        wait_for(lambda: info.exists() and info.stat().st_size > 0, 60, "the scheduler file")
        address = json.loads(info.read_text())["address"]
        elsewhere = tmp_path / "workers"  # workers run in another directory than the sweep
        elsewhere.mkdir()
        for _ in range(2):
            procs.append(spawn([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
                                "--nthreads", "1", "--no-dashboard", "--death-timeout", "60"], elsewhere, log))
        yield address, procs[1:]
    finally:
        for proc in reversed(procs):
            kill_group(proc)
        log.close()


@pytest.mark.mnist
def test_external_cluster_survives_a_killed_worker(cluster, tmp_path, reference):
    from distributed import Client

    address, workers = cluster
    with Client(address, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
        sweep = spawn([sys.executable, "-m", "cortex_fa.cli", "sweep", *ARGS, "--scheduler", address,
                       "--out", "s.nc"], tmp_path, open(tmp_path / "sweep.log", "wb"))
        try:
            run_dir = tmp_path / "s.runs"
            wait_for(lambda: run_files(run_dir), 120, "the first run file")
            busy = [w for w, tasks in client.processing().items() if tasks] or list(client.processing())
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            victim = next(p for p in workers if p.pid == os.getpgid(pid))
            done_at_kill = run_files(run_dir)
            kill_group(victim)
            assert sweep.wait(timeout=180) == 0, (tmp_path / "sweep.log").read_text()
            assert list(client.scheduler_info()["workers"]) == [w for w in client.processing() if w != busy[0]]
        finally:
            kill_group(sweep)
    assert len(done_at_kill) < len(HASHES)  # the kill happened mid-sweep
    assert run_files(run_dir) == HASHES and len(list(run_dir.glob("*.nc"))) == len(HASHES)
    study = open_results(tmp_path / "s.nc")
    assert (study.status == "ok").all()
    assert_same_results(study, reference[0])


@pytest.mark.mnist
def test_resume_after_the_sweep_process_is_killed(tmp_path, reference, capsys):
    sweep = spawn([sys.executable, "-m", "cortex_fa.cli", "sweep", *ARGS, "--workers", "2", "--out", "s.nc"],
                  tmp_path, open(tmp_path / "sweep.log", "wb"))
    run_dir = tmp_path / "s.runs"
    try:
        wait_for(lambda: run_files(run_dir), 120, "the first run file")
    finally:
        kill_group(sweep)  # SIGKILL to the sweep and its LocalCluster workers
    first = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished(run_dir)}
    assert 0 < len(first) < len(HASHES) and not (tmp_path / "s.nc").exists()
    damaged = sorted(first)[0]
    damaged.write_bytes(b"not a netcdf file")  # e.g. a disk problem: must be moved aside and redone
    del first[damaged]

    assert main(["sweep", *ARGS, "--workers", "2", "--out", str(tmp_path / "s.nc")]) == 0
    assert run_files(run_dir) == HASHES
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in first} == first  # kept, not recomputed
    assert damaged.with_name(damaged.name + ".corrupt").read_bytes() == b"not a netcdf file"
    assert not list(run_dir.glob(".*.tmp"))
    assert_same_results(open_results(tmp_path / "s.nc"), reference[0])


def test_unreachable_scheduler_fails_fast_and_writes_nothing(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    status = main(["sweep", *ARGS, "--scheduler", f"tcp://127.0.0.1:{port}", "--out", str(tmp_path / "s.nc")])
    assert status == 2 and time.monotonic() - start < 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot connect to the Dask scheduler" in err[0]
    assert list(tmp_path.iterdir()) == []


RULE_FILE = '''
from cortex_fa.rules import register
from cortex_fa.rules.feedback_alignment import FeedbackAlignment


@register
class HalfFA(FeedbackAlignment):
    """FA with the feedback halved: same angles, half the hidden deltas."""

    name = "half_fa_test"
    summary = "test rule"

    def feedback(self, weights, state, layer):
        return 0.5 * state["B"][layer]
'''


@pytest.mark.mnist
def test_preload_runs_a_custom_rule_in_local_workers(tmp_path):
    """A rule defined only in a user's file trains in worker processes (subprocess: keeps our registry clean)."""
    (tmp_path / "my_rule.py").write_text(RULE_FILE)
    cmd = [sys.executable, "-m", "cortex_fa.cli", "sweep", "--rules", "fa,half_fa_test", "--depths", "1",
           "--width", "16", "--train-subset", "300", "--epochs", "1", "--probe-size", "50", "--workers", "2",
           "--preload", "my_rule.py", "--quiet", "--out", "s.nc"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    study = open_results(tmp_path / "s.nc")
    assert list(study.rule.values) == ["fa", "half_fa_test"] and (study.status == "ok").all()
    at_start = study.isel(step=0, n_hidden=0, seed=0).sel(layer=1)
    # same seed, same B drawn: the halved feedback gives the same angle and exactly half the delta
    np.testing.assert_allclose(at_start.delta_norm.sel(rule="half_fa_test"), 0.5 * at_start.delta_norm.sel(rule="fa"),
                               rtol=1e-5)
    np.testing.assert_allclose(at_start.delta_alignment.sel(rule="half_fa_test"),
                               at_start.delta_alignment.sel(rule="fa"), atol=1e-3)
