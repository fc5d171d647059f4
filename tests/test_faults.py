"""Fault injection: a sweep killed with SIGKILL, damaged run files, divergence, unwritable outputs.

Every sweep here is the real command (``python -m cortex_fa.cli sweep ...``) on
the real MNIST, in a subprocess with its own session, so a SIGKILL reaches the
sweep *and* its LocalCluster workers, as an OOM killer or a batch scheduler
would. Every process started is killed by process group in a ``finally`` block.

The Dask side (a worker process killed mid-sweep on an external cluster) is
covered by ``tests/test_sweep_dask.py::test_external_cluster_survives_a_killed_worker``
and not repeated here; see docs/reliability.md.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

# Tests that run real sweeps (LocalCluster workers, the real MNIST).
sweeps = [pytest.mark.mnist, pytest.mark.dask, pytest.mark.slow]


def on_sweeps(test):
    for mark in sweeps:
        test = mark(test)
    return test


# 2 rules x 2 seeds x 2 learning rates = 8 runs; relu with lr=1000 diverges at the
# second update, so half of the runs are (quick) diverged runs: resuming must keep them.
SWEEP = ["sweep", "--rules", "bp,fa", "--depths", "1", "--seeds", "0,1", "--width", "16",
         "--activation", "relu", "--train-subset", "600", "--epochs", "1", "--probe-size", "100",
         "--grid", "lr=0.1,1000", "--workers", "2", "--quiet"]
N_RUNS = 8
TIMING = ("wall_time", "created", "history")  # allowed to differ between two sweeps
TMP = re.compile(r"^\..+\.nc\..+\.tmp$")  # save_results' temporary names: .<name>.nc.<random>.tmp
LEFTOVER = re.compile(r"^\..+\.(nc|ckpt)\..+\.tmp$")  # ... and those of a run's checkpoint, <hash>.ckpt


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "cortex_fa.cli", *args]


def spawn(args, cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(cli(*args), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process and everything in its process group (LocalCluster workers)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - a zombie that cannot be reaped
        pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def wait_for(predicate, timeout: float, what: str, proc=None, poll: float = 0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep exited ({proc.returncode}) before {what}")
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def finished(run_dir: Path) -> list[Path]:
    """Finished run files: ``<hash>.nc``, not the ``<hash>.partial.nc`` of runs in flight."""
    return [p for p in Path(run_dir).glob("*.nc") if not p.name.endswith(".partial.nc")]


def run_files(run_dir: Path) -> set[str]:
    return {p.stem for p in finished(run_dir)}


def temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in Path(directory).iterdir() if LEFTOVER.match(p.name)) if Path(directory).is_dir() else []


def resume(cwd: Path, *extra) -> subprocess.CompletedProcess:
    """The same command again, to completion."""
    return subprocess.run(cli(*SWEEP, "--out", "s.nc", *extra), cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def load(path: Path) -> xr.Dataset:
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()


def assert_same_study(got: xr.Dataset, want: xr.Dataset) -> None:
    """Identical numbers and strings, timing excepted (NaN equals NaN)."""
    assert dict(got.sizes) == dict(want.sizes)
    assert set(got.variables) == set(want.variables)
    for name in want.variables:
        if name not in TIMING:
            np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
    keep = lambda attrs: {k: v for k, v in attrs.items() if k not in TIMING}  # noqa: E731
    assert keep(got.attrs) == keep(want.attrs)


def assert_complete(tmp: Path, reference) -> xr.Dataset:
    """No run missing or duplicated, no partial file, and the study equals the reference."""
    run_dir = tmp / "s.runs"
    names = sorted(p.name for p in run_dir.iterdir())
    assert [n for n in names if n.endswith(".nc")] == sorted(f"{h}.nc" for h in reference["hashes"])
    assert not temporaries(run_dir) and not temporaries(tmp), names
    assert not [n for n in names if n.endswith(".corrupt")], names
    study = load(tmp / "s.nc")
    hashes = study["config_hash"].values.ravel().tolist()
    assert sorted(hashes) == sorted(reference["hashes"])  # one cell per run, each run once
    assert_same_study(study, reference["study"])
    return study


def stamps(run_dir: Path) -> dict:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished(run_dir)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted sweep: the numbers every interrupted one must end with."""
    tmp = tmp_path_factory.mktemp("reference")
    start = time.monotonic()
    done = resume(tmp)
    assert done.returncode == 0, done.stderr
    hashes = run_files(tmp / "s.runs")
    assert len(hashes) == N_RUNS
    return {"dir": tmp, "study": load(tmp / "s.nc"), "hashes": hashes, "seconds": time.monotonic() - start}


# -- 1. kill -9 at three moments, then the same command again --------------------------

def _seen_tmp(run_dir: Path):
    """A run file being written right now (a save_results temporary), polled without sleeping."""
    try:
        with os.scandir(run_dir) as entries:
            for entry in entries:
                if TMP.match(entry.name):
                    return entry.name
    except FileNotFoundError:
        pass
    return None


def _check_killed_state(tmp: Path, kept: dict) -> dict:
    """After a kill: no study file, every surviving run file complete, earlier ones untouched."""
    run_dir = tmp / "s.runs"
    assert not (tmp / "s.nc").exists()
    now = stamps(run_dir)
    for name in now:  # whatever survived the kill is a complete run file, never a torn one
        assert load(run_dir / name).attrs["config_hash"] == Path(name).stem
    assert {k: v for k, v in now.items() if k in kept} == kept  # finished runs are never redone
    return now


@on_sweeps
def test_sigkill_at_three_moments_then_same_command_gives_the_uninterrupted_study(reference, tmp_path):
    """kill -9 early, mid-run and while a run file is written; each time the same command again.

    One run dir goes through all three kills (each restart is itself killed), so the final
    study is what three interrupted-and-resumed sweeps leave behind.
    """
    run_dir, log = tmp_path / "s.runs", tmp_path / "sweep.log"
    command = [*SWEEP, "--out", "s.nc"]

    # 1. early: the run dir exists, workers are starting, nothing has finished. Only the
    #    sweep process is killed (kill -9 <pid>); its LocalCluster workers must not linger.
    proc = spawn(command, tmp_path, log)
    try:
        wait_for(lambda: (run_dir / "sweep.json").exists(), 60, "the run dir manifest", proc)
        done_at_kill = run_files(run_dir)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_for(lambda: not group_alive(proc.pid), 30, "orphaned workers to exit", poll=0.2)
    finally:
        kill_group(proc)
    assert not done_at_kill
    kept = _check_killed_state(tmp_path, {})

    # 2. mid-run: the same command, killed (with its workers) once two more runs are done.
    proc = spawn(command, tmp_path, log)
    try:
        wait_for(lambda: len(run_files(run_dir)) >= len(kept) + 2, 120, "two more finished runs", proc)
        kill_group(proc)
    finally:
        kill_group(proc)
    kept = _check_killed_state(tmp_path, kept)
    assert len(kept) < N_RUNS, "the sweep finished before the mid-run kill"

    # 3. writing: killed while a worker is inside save_results (its temporary exists, the
    #    final name does not yet); the run dir is polled without sleeping.
    proc = spawn(command, tmp_path, log)
    try:
        end = time.monotonic() + 120
        while not (seen := _seen_tmp(run_dir)):
            assert proc.poll() is None and time.monotonic() < end, "no run file was seen being written"
        kill_group(proc)
    finally:
        kill_group(proc)
    assert temporaries(run_dir), f"the write of {seen} finished before the kill landed"
    assert f"{seen.split('.nc.')[0][1:]}.nc" not in kept
    kept = _check_killed_state(tmp_path, kept)

    # 4. the same command once more, to completion.
    done = resume(tmp_path)
    assert done.returncode == 0, done.stderr
    assert_complete(tmp_path, reference)
    assert {k: v for k, v in stamps(run_dir).items() if k in kept} == kept


@on_sweeps
def test_sigkill_while_the_study_file_is_written_leaves_nothing_behind(reference, tmp_path):
    # Runs already done: the resumed sweep only combines and writes s.nc.
    shutil.copytree(reference["dir"] / "s.runs", tmp_path / "s.runs")
    proc = spawn([*SWEEP, "--out", "s.nc"], tmp_path, tmp_path / "sweep.log")
    try:
        end = time.monotonic() + 120
        while not _seen_tmp(tmp_path):
            assert proc.poll() is None and time.monotonic() < end, "the study file was not seen being written"
        kill_group(proc)
    finally:
        kill_group(proc)
    assert temporaries(tmp_path) and not (tmp_path / "s.nc").exists()
    done = resume(tmp_path)
    assert done.returncode == 0, done.stderr
    assert_complete(tmp_path, reference)  # fails: the first temporary is still there


# -- 3. damaged run files: detected on resume, moved aside with a warning, recomputed ----

@on_sweeps
def test_damaged_run_files_are_moved_aside_and_recomputed(reference, tmp_path):
    run_dir = tmp_path / "s.runs"
    shutil.copytree(reference["dir"] / "s.runs", run_dir)
    names = sorted(p.name for p in run_dir.glob("*.nc"))
    truncated, garbage, empty, foreign, *intact = names
    data = (run_dir / truncated).read_bytes()
    (run_dir / truncated).write_bytes(data[: len(data) // 2])
    (run_dir / garbage).write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(4000))
    (run_dir / empty).write_bytes(b"")
    shutil.copy(run_dir / intact[0], run_dir / foreign)  # a valid run file, but of another config
    before = stamps(run_dir)

    done = resume(tmp_path)
    assert done.returncode == 0, done.stderr
    for name in (truncated, garbage, empty, foreign):
        assert (run_dir / f"{name}.corrupt").exists()
        assert re.search(rf"warning: .*{re.escape(name)} is not a valid run file.*moved it to {re.escape(name)}.corrupt",
                         done.stderr), done.stderr
    assert (run_dir / f"{truncated}.corrupt").read_bytes() == data[: len(data) // 2]  # kept for inspection
    for name in (truncated, garbage, empty, foreign):
        (run_dir / f"{name}.corrupt").unlink()
    assert_complete(tmp_path, reference)
    assert {n: stamps(run_dir)[n] for n in intact} == {n: before[n] for n in intact}  # only the damaged redone


# -- 5. divergence: marked, metrics kept, the sweep goes on, the report lists it ---------

@on_sweeps
def test_diverged_runs_are_marked_kept_and_reported(reference):
    study = reference["study"]
    status = study["status"]
    assert (status.sel(lr=1000.0) == "diverged").all() and (status.sel(lr=0.1) == "ok").all()
    at = study["diverged_at_step"]
    assert (at.sel(lr=1000.0) >= 1).all() and (at.sel(lr=0.1) == -1).all()
    diverged = study.sel(lr=1000.0)
    # the metrics logged before the divergence are kept: step 0 has its angles
    assert np.isfinite(diverged["delta_alignment"].sel(step=0, layer=1)).all()
    # the healthy runs went on to the end of their epoch
    assert np.isfinite(study["test_accuracy"].sel(lr=0.1).isel(step=-1)).all()

    done = subprocess.run(cli("report", "s.nc", "--no-write"), cwd=reference["dir"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("Diverged or missing runs:")[1].strip().splitlines()
    assert len(listed) == 4 and all("diverged at step" in line and "lr=1000" in line for line in listed), listed


@pytest.mark.mnist
def test_lr_1000_with_the_default_activation_is_marked_diverged(mnist):
    """The issue's divergence case as given (lr=1e3), with the default tanh and a tiny budget."""
    from cortex_fa.config import RunConfig
    from cortex_fa.training import train

    ds = train(RunConfig(rule="bp", hidden=(16,), train_subset=600, epochs=1, probe_size=100, lr=1e3),
               mnist, progress=False)
    # tanh saturates, so the loss stays finite (about 800x chance): the run must still stop as diverged
    assert ds.attrs["status"] == "diverged"
    assert ds.attrs["diverged_at_step"] <= ds.attrs["steps_per_epoch"]
    assert np.isfinite(ds["delta_alignment"].isel(step=0)).all()  # what was logged before is kept


# -- 6. an output that cannot be written: one line, before any training ----------------

def _unwritable(tmp_path: Path) -> Path:
    """A directory in which this process cannot create files (root ignores mode bits: use /proc)."""
    if os.geteuid() == 0:
        return Path("/proc")
    d = tmp_path / "readonly"
    d.mkdir()
    d.chmod(0o555)
    return d


# Commands that would train for minutes, on a data dir that does not exist: a refusal that
# names the output is a check made before the data is touched, let alone any training.
LONG_RUN = ["--rule", "fa", "--hidden", "16", "--epochs", "50", "--data-dir", "no-mnist-here"]
LONG_SWEEP = ["--rules", "fa", "--width", "16", "--epochs", "50", "--workers", "1", "--data-dir", "no-mnist-here"]


def _study_file(directory: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).parent))
    from factories import make_study_dataset

    from cortex_fa.results import save_results

    return save_results(make_study_dataset(rules=("bp",), depths=(1,), seeds=(0,), epochs=1),
                        directory / "study.nc")


def _check_one_line_refusal(argv, cwd: Path, fragment: str, pass_fds=()):
    before = sorted(p.name for p in cwd.iterdir())
    try:
        done = subprocess.run(cli(*argv), cwd=cwd, capture_output=True, text=True, timeout=45, pass_fds=pass_fds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(argv)}: no error within 45 s: it started working instead of refusing")
    err = done.stderr.strip()
    assert done.returncode == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err[-2000:]
    assert err.startswith("cortex-fa") and fragment in err, err
    assert sorted(p.name for p in cwd.iterdir()) == before  # nothing written, no partial output


@pytest.mark.parametrize("command", [
    "run", "sweep", "plot",
])
def test_missing_output_directory_is_refused_before_work(command, tmp_path):
    study = _study_file(tmp_path)
    argv = {"run": ["run", *LONG_RUN, "--out", "missing/r.nc"],
            "sweep": ["sweep", *LONG_SWEEP, "--out", "missing/s.nc"],
            "plot": ["plot", str(study), "--out", "missing/deeper/figs"]}[command]
    _check_one_line_refusal(argv, tmp_path, "missing")


def test_report_of_a_missing_path_is_one_line(tmp_path):
    _check_one_line_refusal(["report", "missing/study.nc"], tmp_path, "missing/study.nc")


@pytest.mark.parametrize("command", ["run", "sweep", "plot"])
def test_unwritable_output_directory_is_refused_before_work(command, tmp_path):
    study = _study_file(tmp_path)
    bad = _unwritable(tmp_path)
    argv = {"run": ["run", *LONG_RUN, "--out", str(bad / "r.nc")],
            "sweep": ["sweep", *LONG_SWEEP, "--out", str(bad / "s.nc")],
            "plot": ["plot", str(study), "--out", str(bad / "figs")]}[command]
    _check_one_line_refusal(argv, tmp_path, str(bad))


def test_report_next_to_an_unwritable_file_is_refused_before_work(tmp_path):
    study = _study_file(tmp_path)
    if os.geteuid() != 0:
        ro = _unwritable(tmp_path)
        ro.chmod(0o755)
        shutil.move(study, ro / "study.nc")
        ro.chmod(0o555)
        argv, fds = ["report", str(ro / "study.nc")], ()
    else:
        # The file reached through /proc/self/fd: its directory accepts no new file, even for root.
        fd = os.open(study, os.O_RDONLY)
        argv, fds = ["report", f"/proc/self/fd/{fd}"], (fd,)
    try:
        _check_one_line_refusal(argv, tmp_path, "writ", pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)


# -- 4. a run in flight: kill -9 after an epoch's checkpoint, it continues from there ----------

@on_sweeps
def test_a_killed_sweep_continues_its_run_from_the_last_epoch(tmp_path):
    """One 6-epoch run on a real LocalCluster; killed after its first checkpoint, resumed, equal to unbroken."""
    import cortex_fa as cfa
    from cortex_fa.config import RunConfig
    from cortex_fa.data import load_mnist

    args = ["sweep", "--rules", "fa", "--depths", "2", "--seeds", "3", "--width", "64", "--train-subset", "6000",
            "--epochs", "6", "--lr", "0.1", "--workers", "1", "--quiet", "--out", "s.nc"]
    proc = spawn(args, tmp_path, tmp_path / "log")
    run_dir = tmp_path / "s.runs"
    deadline = time.monotonic() + 240
    while not list(run_dir.glob("*.ckpt")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_group(proc)
    ckpts = list(run_dir.glob("*.ckpt"))
    assert ckpts and not finished(run_dir), (tmp_path / "log").read_text()[-2000:]
    killed_at = cfa.Simulation.restore(ckpts[0], progress=False).step
    loud = [a for a in args if a != "--quiet"]
    done = subprocess.run(cli(*loud), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"0 already in {run_dir.name}, 1 continuing from a checkpoint" in done.stderr, done.stderr
    (run,) = finished(run_dir)
    assert not list(run_dir.glob("*.ckpt"))  # removed once the run file is in place
    got = load(run)
    assert got.attrs["resumed_at_steps"].split(",")[0] == str(killed_at) and 0 < killed_at < 6 * 60
    config = RunConfig.from_json(got.attrs["config"])
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # as on a sweep worker: one BLAS thread sums in one order
        want = cfa.Simulation(config, data=load_mnist(progress=False), progress=False).run().results
    for name in want.data_vars:
        if name not in TIMING:
            np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
