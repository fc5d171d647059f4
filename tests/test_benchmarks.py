"""Smoke tests of the benchmarks: they run on a tiny config and write their JSON.

No timing is asserted: CI machines are shared and noisy. The numbers
themselves are in docs/performance.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "synthetic", "--hidden", "16", "--rounds", "1", "--batches", "2", "--metric-rounds", "1",
        "--widths", "8", "--depths", "1", "--threads", "1"]


def _benchmark(tmp_path, module, *args, timeout=900):
    """Run ``python -m benchmarks.<module> ARGS --out FILE`` from the repository root; return its JSON."""
    out = tmp_path / f"{module}.json"
    subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args, "--out", str(out)],
                   cwd=ROOT, check=True, timeout=timeout, capture_output=True)
    return json.loads(out.read_text())


def _throughput(tmp_path, *extra):
    return _benchmark(tmp_path, "throughput", *TINY, *extra, timeout=600)


def test_throughput_benchmark_writes_its_json(tmp_path):
    result = _throughput(tmp_path, "--rules", "fa,bp")
    rules = result["throughput"]["rules"]
    assert set(rules) == {"fa", "bp"}
    for row in rules.values():
        assert row["examples_per_s"] > 0 and row["gemm_only_gflops"] > 0 and row["efficiency"] > 0
    assert result["square_sgemm_gflops"] > 0
    assert set(result["accuracy"]) == {"fa", "bp"}
    assert result["scaling"][0]["width"] == 8 and result["scaling"][0]["depth"] == 1
    assert result["metrics_overhead"]["metrics_on_s"] > 0
    if result["torch"] == "ok":  # PyTorch installed: the peer columns are there
        assert "speedup_vs_torch_same_rule" in rules["fa"] and "speedup_vs_torch_bp" in rules["fa"]
        assert 0 <= result["accuracy"]["fa"]["torch_test_accuracy"] <= 1
    else:
        assert result["torch"].startswith("skipped")


def test_throughput_benchmark_without_torch_says_so(tmp_path):
    result = _throughput(tmp_path, "--no-torch", "--rules", "dfa", "--sections", "throughput")
    assert result["torch"] == "skipped: --no-torch"
    row = result["throughput"]["rules"]["dfa"]
    assert "speedup_vs_torch_same_rule" not in row and row["examples_per_s"] > 0


def test_harness_interleaves_and_pairs_rounds():
    sys.path.insert(0, str(ROOT))
    from benchmarks import harness

    order = []
    cands = [harness.Candidate(name, lambda name=name: order.append(name) or 10) for name in "abc"]
    timings = harness.interleave(cands, rounds=3, warmup=0)
    assert order == list("abcbcacab")  # the first candidate rotates
    assert all(len(t.seconds) == 3 and t.examples == [10] * 3 for t in timings.values())
    assert harness.speedup(timings, "a", "a") == pytest.approx(1.0)


def test_gemm_shapes_of_a_step_count_the_known_flops():
    sys.path.insert(0, str(ROOT))
    from benchmarks.throughput import gemm_flops, step_gemms

    # 784-1000-10, batch 64: forward + update 2 * 2*64*(784*1000 + 1000*10), deltas 2*64*10*1000
    flops = gemm_flops(step_gemms((784, 1000, 10), "layerwise", 64))
    assert flops == 2 * 2 * 64 * (784 * 1000 + 1000 * 10) + 2 * 64 * 10 * 1000
    assert flops * 60000 / 64 == pytest.approx(191.7e9, rel=1e-3)  # ~190 GFLOP per epoch


@pytest.mark.mnist
@pytest.mark.slow
def test_memory_benchmark_writes_its_json(tmp_path, mnist):
    result = _benchmark(tmp_path, "memory", "--quick", "--hidden", "32")
    for part in ("imports", "mnist", "run"):
        assert result[part]["exit_code"] == 0 and result[part]["peak_rss_mib"] > 0
    assert result["mnist"]["peak_rss_mib"] > result["imports"]["peak_rss_mib"]  # the uint8 data is resident


@pytest.mark.dask
@pytest.mark.mnist
@pytest.mark.slow
def test_sweep_scaling_benchmark_writes_its_json(tmp_path, mnist):
    pytest.importorskip("distributed")
    result = _benchmark(tmp_path, "sweep_scaling", "--quick", "--width", "8", "--train-subset", "200")
    assert result["runs"] == 8 and result["speedup"] > 0
    for info in result["worker_blas_threads"].values():  # one BLAS thread per worker: no oversubscription
        assert all(lib["num_threads"] == 1 for lib in info)


@pytest.mark.mnist
@pytest.mark.slow
def test_probe_size_benchmark_writes_its_json(tmp_path, mnist):
    rows = _benchmark(tmp_path, "probe_size", "--quick", "--draws", "3")["rows"]
    assert [r["probe_size"] for r in rows] == [64, 128, 256, 500, 1000]
    for r in rows:
        sd, mean = r["sd_deg"]["delta_alignment"], r["mean_deg"]["delta_alignment"]
        assert all(0 < s < 10 for s in sd[:3]) and sd[3] == 0  # hidden columns scatter; the readout is exact
        assert all(30 < m < 95 for m in mean[:3]) and r["ms_per_evaluation"] > 0


def test_live_overhead_benchmark_writes_its_json(tmp_path):
    result = _benchmark(tmp_path, "live_overhead", "--quick", "--rounds", "1", "--hidden", "16")
    assert result["live_on_s"] > 0 and result["live_off_s"] > 0
    assert result["writes_per_run"] >= 1 and 0 < result["write_share"] < 1


def test_simulation_overhead_benchmark_checks_equal_weights_and_writes_its_json(tmp_path):
    result = _benchmark(tmp_path, "simulation_overhead", "--quick", "--rounds", "1", "--hidden", "16,16")
    assert result["simulation_s"] > 0 and result["bare_loop_s"] > 0 and -1 < result["overhead"] < 10


@pytest.mark.brian2
@pytest.mark.mnist
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_brian2_speed_benchmark_writes_its_json(tmp_path, mnist):
    pytest.importorskip("brian2")
    import shutil

    targets = "cython,cpp_standalone" if shutil.which("g++") else "cython"
    result = _benchmark(tmp_path, "brian2_speed", "--quick", "--targets", targets, timeout=600)
    rows = result["candidates"]
    assert "legacy cython (python plasticity)" in rows and "synaptic cython, fast dt" in rows
    for row in rows.values():
        assert row["ms_per_digit"] > 0 and row["cpu_ms_per_digit"] >= 0 and row["steps_per_digit"] >= 1
    # 8 steps at dt = 3 tau: 2 columns, the softmax normaliser's delay, 1 feedback hop
    assert rows["synaptic cython, fast dt"]["steps_per_digit"] == 8 < rows["synaptic cython"]["steps_per_digit"]
    split = result["time_split_ms_per_digit"]["synaptic cython, fast dt"]
    assert set(split) == {"settling", "plasticity", "io", "python_and_run_setup"}
    assert list(result["width_scaling_cython_fast_dt"]) == ["16", "32"]


@pytest.mark.brian2
@pytest.mark.mnist
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_brian2_defaults_benchmark_writes_its_json(tmp_path, mnist):
    pytest.importorskip("brian2")
    result = _benchmark(tmp_path, "brian2_defaults", "--quick", "--cache", str(tmp_path / "cache"), timeout=900)
    assert result["backend_params"] == {} and result["network"] == "784-16-10"
    assert result["first_run"]["warm_cache"]["compiled"] is False
    for key in ("short_run", "epoch"):
        row = result[key]
        assert row["ratio_train_time"] > 0 and row["numpy"]["train_s"] > 0 and row["brian2"]["train_s"] > 0
        assert row["brian2"]["attrs"]["dynamics"] == "fast"
        assert row["accuracy_equal"] or 0 <= row["numpy_float64_test_accuracy"] <= 1
    for row in result["accuracy_at_stable_lr"]:
        assert row["brian2"] == row["numpy_float64"]  # same updates; at a stable rate rounding stays rounding
