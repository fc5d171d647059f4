"""The Brian2 backend's C++ standalone target without sharp edges.

- several standalone models, of different shapes, train in one process and
  each agrees with the numpy backend;
- a run killed with ``kill -9`` takes its program with it, and the next
  standalone model (of any process) removes the run directory it left;
- two processes that need the same program with an empty cache compile it
  once and both use it.

The killed and concurrent runs use a cache of their own
(``$CORTEX_FA_BRIAN2_CACHE``, shared by this module's tests); the in-process
models use the default cache, as a user's runs would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("brian2")

from cortex_fa import backends, kernels, rules  # noqa: E402
from cortex_fa.config import RunConfig  # noqa: E402
from cortex_fa.network import Network  # noqa: E402

pytestmark = [pytest.mark.brian2, pytest.mark.filterwarnings("ignore::pyparsing.PyparsingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-4


def _need_cxx():
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        assert os.environ.get("CI") != "true", "no C++ compiler under CI"
        pytest.skip("no C++ compiler")


def compile_pair(rule, hidden, backend_params, seed=0, **cfg):
    """The same seeded network compiled by both backends (numpy in float64: the comparison measures Brian2)."""
    from test_brian2 import float64_reference

    models = []
    for name in ("numpy", "brian2"):
        config = RunConfig(rule=rule, hidden=hidden, backend=name, seed=seed, batch_size=1,
                           backend_params=backend_params if name == "brian2" else {}, **cfg)
        models.append(backends.get(name).compile(Network.from_config(config), rules.make(rule, config.rule_params),
                                                 config, np.random.default_rng(seed)))
    return float64_reference(models[0]), models[1]


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def digits(n, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 784))
    labels = rng.integers(0, 10, n)
    return x, kernels.one_hot(labels).astype(np.float64), labels


def numpy_steps(ref, x, y, labels, lr):
    return [ref.train_batch(x[k:k + 1], y[k:k + 1], labels[k:k + 1], lr)[0] for k in range(len(labels))]


def test_fast_defaults():
    from cortex_fa.backends.brian2 import options as opts
    from cortex_fa.backends.brian2.targets import resolve_target

    config = RunConfig(rule="fa", hidden=(100,), backend="brian2", batch_size=1)
    p = opts.options({}, Network.from_config(config), rules.make("fa"), config)
    assert p["dynamics"] == "fast" and p["dt_ms"] == 400.0 and p["block"] == 1000
    assert p["settle_steps"] == 4 and p["settle_error"] == 0.0  # 2 columns + softmax normaliser + 1 hop
    assert p["target"] == ("cpp_standalone" if shutil.which(os.environ.get("CXX", "g++")) else resolve_target("auto"))
    slow = opts.options({"dynamics": "resolved"}, Network.from_config(config), rules.make("fa"), config)
    assert slow["dt_ms"] == 2.0 and slow["settle_steps"] > 50
    custom = opts.options({"dt_ms": 30, "target": "numpy"}, Network.from_config(config), rules.make("fa"), config)
    assert custom["dynamics"] == "custom" and custom["settle_steps"] == 8
    assert opts.attributes(p, "x")["dynamics"] == "fast"


def test_auto_without_a_compiler_is_the_best_runtime_target(monkeypatch):
    from cortex_fa.backends.brian2.targets import cython_available, resolve_target

    monkeypatch.setenv("CXX", "/nonexistent/g++")
    assert resolve_target("auto") == ("cython" if cython_available() else "numpy")
    assert resolve_target("auto", "python") in ("cython", "numpy")


@pytest.mark.mnist
@pytest.mark.slow
def test_two_standalone_models_in_one_process_train_like_numpy(mnist):
    """Different shapes, one process, runs interleaved; runs shorter than the block stop early."""
    _need_cxx()
    a_ref, a = compile_pair("fa", (16,), {"block": 7})
    b_ref, b = compile_pair("kp", (12, 8), {"block": 7}, rule_params={"decay": 0.01}, momentum=0.5)
    assert a.device is not b.device and a.directory != b.directory
    x = kernels.normalise(mnist.train_images[:20]).astype(np.float64)
    labels = mnist.train_labels[:20]
    y = kernels.one_hot(labels).astype(np.float64)
    starts = {m: [W.astype(np.float64) for W in ref.weights] for m, ref in ((a, a_ref), (b, b_ref))}
    for part in (slice(0, 9), slice(9, 12), slice(12, 20)):  # 9 = 7 + 2: a full run and one stopped after 2
        for ref, model in ((a_ref, a), (b_ref, b)):
            want = numpy_steps(ref, x[part], y[part], labels[part], 0.02)
            got, _ = model.train_block(x[part], y[part], labels[part], np.full(len(labels[part]), 0.02))
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert a.device._last_run_completed_fraction < 1  # the last run (8 = 7 + 1) stopped after 1 presentation
    for ref, model in ((a_ref, a), (b_ref, b)):
        for W_ref, W, W0 in zip(ref.weights, model.synaptic_weights(), starts[model]):
            assert rel(W - W0, W_ref - W0) < TOL
        assert model.attrs["codegen_target"] == "cpp_standalone" and model.attrs["dynamics"] == "fast"
        directory = model.directory
        model.close()
        assert not os.path.exists(directory) and os.path.exists(model.build_directory)


# -- other processes: kill -9, concurrency ------------------------------------------------------------

CHILD = r'''
import json, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np
from cortex_fa import backends, kernels, rules
from cortex_fa.config import RunConfig
from cortex_fa.network import Network

params, n = json.loads(sys.argv[1]), int(sys.argv[2])
cfg = RunConfig(rule="fa", hidden=(8,), backend="brian2", batch_size=1, seed=0, backend_params=params)
model = backends.get("brian2").compile(Network.from_config(cfg), rules.make("fa"), cfg, np.random.default_rng(0))
print(json.dumps({"event": "built", "run_dir": model.directory, "compiled": model.compiled}), flush=True)
rng = np.random.default_rng(1)
x = rng.random((n, 784)); labels = rng.integers(0, 10, n)
losses, _ = model.train_block(x, kernels.one_hot(labels).astype(np.float64), labels, np.full(n, 0.02))
print(json.dumps({"event": "done", "compiled": model.compiled, "build": model.build_directory,
                  "losses": [float(v) for v in losses], "w": [float(np.abs(W).sum()) for W in model.weights]}))
'''
# 500,000 integration steps per digit: a run of 20 digits lasts many seconds (the program is the same for any n).
LONG = {"dynamics": "resolved", "settle_time_ms": 1e6, "block": 20}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("brian2_cache")


def child(cache, params, n):
    env = {**os.environ, "CORTEX_FA_BRIAN2_CACHE": str(cache), "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(params), str(n)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def children_of(pid):
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def gone(pid):
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return text[text.rindex(")") + 2:].split()[0] == "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the program's parent-death signal is Linux's")
def test_two_processes_with_an_empty_cache_compile_once(cache):
    _need_cxx()
    assert not any(cache.iterdir())
    procs = [child(cache, {"block": 50}, 30) for _ in range(2)]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-3000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    assert sorted(o["compiled"] for o in outs) == [False, True]  # one compiled, the other waited and reused it
    assert outs[0]["build"] == outs[1]["build"] and outs[0]["w"] == outs[1]["w"] and outs[0]["losses"] == outs[1]["losses"]
    projects = [p for p in cache.iterdir() if p.is_dir() and p.name != "runs"]
    assert [p.name for p in projects] == [Path(outs[0]["build"]).name]  # no tmp-* left over
    assert list((cache / "runs").iterdir()) == []  # run directories removed at exit
    again = child(cache, {"block": 50}, 30)  # a later process: no compilation
    stdout, stderr = again.communicate(timeout=300)
    last = json.loads(stdout.strip().splitlines()[-1])
    assert again.returncode == 0 and last["compiled"] is False and last["losses"] == outs[0]["losses"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the program's parent-death signal is Linux's")
def test_kill_9_leaves_a_directory_the_next_run_cleans_up(cache):
    _need_cxx()
    proc = child(cache, LONG, 20)
    built = json.loads(proc.stdout.readline())
    assert built["event"] == "built", proc.stderr.read()[-3000:]
    run_dir = Path(built["run_dir"])
    deadline = time.monotonic() + 60
    while not (program := children_of(proc.pid)) and time.monotonic() < deadline:  # the program has started
        time.sleep(0.05)
    assert program, "the standalone program never started"
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while not all(gone(pid) for pid in program) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in program), "the standalone program outlived its parent"
    assert run_dir.is_dir()  # left behind by the killed process

    # The next run (another process, as after a crash): the stale directory goes, training works.
    again = child(cache, LONG, 1)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr[-3000:]
    built, done = (json.loads(line) for line in stdout.strip().splitlines()[-2:])
    assert not run_dir.exists() and built["compiled"] is False  # (the killed process compiled the program)
    assert list((cache / "runs").iterdir()) == []
    ref, _ = compile_pair("fa", (8,), {**LONG, "target": "numpy"})
    x, y, labels = digits(1)
    want = numpy_steps(ref, x, y, labels, 0.02)
    np.testing.assert_allclose(done["losses"], want, rtol=1e-4)
    np.testing.assert_allclose(done["w"], [np.abs(W).sum() for W in ref.weights], rtol=1e-5)
