"""Partial results while a run trains, and what a killed run leaves behind (issue 14, part 1).

The subprocess tests train on a small subset of the real MNIST with a tiny
network and write partial files every 0.2 s (``CORTEX_FA_LIVE_INTERVAL``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from test_faults import wait_for as wait_until

from cortex_fa import study
from cortex_fa.config import RunConfig
from cortex_fa.errors import ResultsError
from cortex_fa.live import PartialWriter
from cortex_fa.results import RunRecorder, open_file, open_results, partial_path, save_results
from cortex_fa.training import train

# Longer than any test waits (it is stopped once seen growing): batch 10, 500 updates an epoch.
RUN = ["--rule", "fa", "--hidden", "64", "--epochs", "100", "--train-subset", "5000",
       "--batch-size", "10", "--probe-size", "100", "--seed", "0", "--quiet"]


def env():
    return {**os.environ, "CORTEX_FA_LIVE_INTERVAL": "0.2"}


def wait_for(predicate, proc, timeout=120.0):
    return wait_until(predicate, timeout, "the condition", proc=proc, poll=0.05)


def readable_partial(path):
    """The partial file's Dataset if it can be opened now, else None."""
    try:
        return open_file(path)
    except ResultsError:
        return None  # not written yet


def test_partial_writer_writes_a_valid_running_file_and_discards_it(tmp_path, tiny_data):
    path = tmp_path / "run.partial.nc"
    writer = PartialWriter(path, interval=0.0, budget=1e9)
    ds = train(RunConfig(rule="fa", hidden=(16,), epochs=1, train_subset=200, batch_size=50,
                         probe_size=50), tiny_data, progress=False, on_log=writer)
    part = open_file(path)
    assert part.attrs["status"] == "running" and part.attrs["partial"] == 1
    assert writer.writes == ds.sizes["step"]  # no interval, no budget: every logged step
    np.testing.assert_array_equal(part["step"], ds["step"])
    writer.discard()
    assert not path.exists()


def test_writes_are_throttled_by_interval_and_budget(tmp_path, tiny_data):
    cfg = RunConfig(rule="bp", hidden=(8,), epochs=1, train_subset=100, batch_size=10, probe_size=20)
    rec = RunRecorder(cfg, 2, 10, tiny_data)
    rec.add(0, 0.0, {"train_loss": 1.0})
    writer = PartialWriter(tmp_path / "a.partial.nc", interval=60.0)
    for _ in range(5):
        writer(rec)
    assert writer.writes == 1  # the first at once, the others inside the interval
    slow = PartialWriter(tmp_path / "b.partial.nc", interval=0.0, budget=1e-6)
    for _ in range(3):
        slow(rec)
    assert slow.writes == 2  # after the first (imports), a write of t seconds buys a pause of t / budget


def test_a_directory_study_skips_partial_files_unless_asked(tmp_path, tiny_data):
    cfg = RunConfig(rule="fa", hidden=(8,), epochs=1, train_subset=100, batch_size=50, probe_size=20)
    done = train(cfg, tiny_data, progress=False)
    save_results(done, tmp_path / "a.nc")
    running = train(cfg.replace(seed=1), tiny_data, progress=False).assign_attrs(status="running", partial=1)
    save_results(running, tmp_path / "b.partial.nc")
    save_results(running, tmp_path / "a.partial.nc")  # a's final file wins over it
    assert open_results(tmp_path).sizes["seed"] == 1
    both = open_results(tmp_path, include_partial=True)
    assert sorted(both["status"].values.ravel().astype(str)) == ["ok", "running"]


def test_a_real_run_writes_partial_files_while_it_trains(tmp_path):
    out = tmp_path / "run.nc"
    proc = subprocess.Popen([sys.executable, "-m", "cortex_fa.cli", "run", *RUN, "--out", str(out)],
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        first = wait_for(lambda: readable_partial(partial_path(out)), proc)
        assert first.attrs["status"] == "running" and first.attrs["partial"] == 1
        # ... and it grows while the run goes on, past the first epoch end.
        later = wait_for(lambda: (p := readable_partial(partial_path(out))) is not None
                         and p["epoch"].values[-1] >= 1 and p, proc)
        assert later.sizes["step"] > first.sizes["step"] and proc.poll() is None
        assert np.isfinite(later["test_accuracy"].values).any()
        assert not out.exists()
    finally:
        proc.kill()
        proc.wait()


def test_the_final_file_replaces_the_partial_one(tmp_path):
    from cortex_fa.cli import main

    out = tmp_path / "run.nc"
    assert main(["run", "--rule", "fa", "--hidden", "16", "--train-subset", "500", "--batch-size", "50",
                 "--probe-size", "50", "--quiet", "--out", str(out)]) == 0
    assert open_results(out).attrs["status"] == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.nc"]  # no partial, no temporary


def test_sigkill_leaves_nothing_taken_for_a_finished_run(tmp_path):
    cfg = RunConfig(rule="fa", hidden=(64,), epochs=100, train_subset=5000, batch_size=10, probe_size=100)
    run_dir = tmp_path / "runs"
    run_dir.mkdir()
    study.write_manifest(run_dir, {"spec": {}, "runs": [cfg.hash()]})
    final = run_dir / f"{cfg.hash()}.nc"
    code = ("import json, sys; from cortex_fa.sweep import run_task; "
            "run_task(json.loads(sys.argv[1]), sys.argv[2])")
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(cfg.to_dict()), str(run_dir)],
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: readable_partial(partial_path(final)), proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert partial_path(final).exists() and not final.exists()
    with pytest.raises(ResultsError, match="only 1 partial file"):
        open_results(run_dir)  # not a study of one finished run
    assert not study.run_file_ok(final, cfg.hash())  # resume trains it again...
    assert study.clean_temporaries(run_dir) >= 1  # ... after deleting the stale partial file
    assert not partial_path(final).exists()


def test_run_serve_trains_and_serves_the_live_app(tmp_path):
    import urllib.request

    from test_security import free_port, stop, wait_listening

    out, port, log = tmp_path / "fa.nc", free_port(), tmp_path / "run.log"
    cmd = [sys.executable, "-m", "cortex_fa.cli", "run", "--rule", "fa", "--hidden", "16", "--train-subset",
           "500", "--batch-size", "50", "--probe-size", "50", "--quiet", "--out", str(out), "--serve",
           "--port", str(port)]
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env())
    try:
        wait_listening(port, proc, log, timeout=300)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=300) as page:
            assert page.status == 200
        wait_for(lambda: "keeps serving" in log.read_text(), proc, timeout=300)
        assert f"http://127.0.0.1:{port}/" in log.read_text() and open_results(out).attrs["status"] == "ok"
        assert proc.poll() is None  # still serving after the run
    finally:
        stop(proc)
