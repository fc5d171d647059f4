"""Decompression bombs: results files that declare far more than they hold are refused unread.

Each bomb is a small NetCDF-4 file with the attributes of a real run or study
whose compressed variables declare gigabytes (never written: HDF5 returns the
fill value, so the file stays a few kilobytes). Shapes: many steps, many
layers, the 20,000 x 2,000 file of issue 16, many runs (a huge seed dim, an
extra swept dim), many variables (each within the dim limits, too many bytes
together, or simply too many), and a directory of small run files that would
combine into a huge grid.

Every command that reads results (report, plot, serve) is run as a real
``python -m cortex_fa.cli`` under an address-space limit (1.5 GB: loading any
bomb would end in MemoryError) and a time limit; it must exit 2 with one line
naming the file and the limit. In-process, :func:`cortex_fa.open_results`
refuses each bomb within a second. Limits are configurable by keyword and
environment variable, and a genuine large file opens once they are raised.
"""

from __future__ import annotations

import concurrent.futures
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import netCDF4
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from factories import make_run_dataset, make_study_dataset  # noqa: E402

import cortex_fa as cfa  # noqa: E402
from cortex_fa.errors import ResultsError  # noqa: E402
from cortex_fa.limits import ENV, Limits  # noqa: E402

ADDRESS_SPACE = 1536 << 20  # bytes for each CLI subprocess: enough to start, far too little to load a bomb
TIMEOUT = 90  # seconds for one CLI subprocess on a busy 2-core machine (start-up is most of it)


def write_bomb(path: Path, sizes: dict, *, n_vars: int | None = None, study: bool = False) -> Path:
    """A file with valid attributes whose variables declare ``sizes``, written without allocating them."""
    template = make_study_dataset(depths=(1,), seeds=(0,), epochs=1) if study else make_run_dataset()
    with netCDF4.Dataset(path, "w") as nc:
        nc.setncatts(dict(template.attrs))
        for dim, n in sizes.items():
            nc.createDimension(dim, n)
            if dim != "rule":  # numeric index coordinates, written in chunks to stay small
                var = nc.createVariable(dim, "i8", (dim,), zlib=True)
                var[:min(n, 1000)] = np.arange(min(n, 1000))
        run_dims = tuple(d for d in sizes if d not in ("step", "layer"))
        for name in ("status", "config") if study else ():
            nc.createVariable(name, str, run_dims)
        names = [v for v in template.data_vars if template[v].dims[-1] in ("step", "layer")]
        if n_vars is not None:
            names = [f"{names[k % len(names)]}_{k}" for k in range(n_vars)] + ["test_accuracy", "train_loss",
                                                                              "wall_time"]
        for name in names:
            dims = run_dims + (("step", "layer") if name.split("_")[0] in ("weight", "delta", "update", "grad",
                                                                           "feedback") else ("step",))
            var = nc.createVariable(name, "f8", dims, zlib=True, complevel=9, chunksizes=[1] * (len(dims) - 1)
                                    + [min(sizes[dims[-1]], 4096)])
            var.setncattr("units", "1")
    return path


BOMBS = {
    "many-steps": dict(sizes={"step": 5_000_000, "layer": 3}),
    "many-layers": dict(sizes={"step": 20, "layer": 2_000_000}),
    "issue-16": dict(sizes={"step": 20_000, "layer": 2_000}),
    "many-runs": dict(sizes={"rule": 1, "n_hidden": 1, "seed": 1_000_000, "step": 10, "layer": 3}, study=True),
    "extra-dims": dict(sizes={"rule": 1, "n_hidden": 1, "seed": 500, "lr": 500, "step": 10, "layer": 3}, study=True),
    "many-vars-bytes": dict(sizes={"step": 50_000, "layer": 500}, n_vars=12),
    "many-vars-count": dict(sizes={"step": 10, "layer": 3}, n_vars=1_500),
}
# what each must be refused for (the message names it)
REASON = {"many-steps": "steps", "many-layers": "layers", "issue-16": "layers", "many-runs": "runs",
          "extra-dims": "runs", "many-vars-bytes": "bytes", "many-vars-count": "variables"}


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bombs")
    out = {name: write_bomb(d / f"{name}.nc", **spec) for name, spec in BOMBS.items()}
    for name, path in out.items():
        assert path.stat().st_size < 4 << 20, f"{name} is {path.stat().st_size} bytes: not a bomb"
    return out


@pytest.fixture(scope="module")
def combine_bomb(tmp_path_factory) -> Path:
    """Thirty small run files: distinct seeds and batch sizes span a grid of 30 x 30 runs (about 20 MB)."""
    d = tmp_path_factory.mktemp("combine_bomb")
    for k in range(30):
        cfa.save_results(make_run_dataset("fa", depth=2, epochs=3, seed=k, steps_per_epoch=100 + k), d / f"{k}.nc")
    return d


def declared_bytes(path: Path) -> int:
    with netCDF4.Dataset(path) as nc:
        return sum(int(np.prod(v.shape)) * 8 for v in nc.variables.values())


@pytest.mark.parametrize("name", list(BOMBS))
def test_open_results_refuses_a_bomb_within_a_second(bombs, name):
    assert declared_bytes(bombs[name]) > 200 << 20 or name == "many-vars-count"
    start = time.perf_counter()
    with pytest.raises(ResultsError) as info:
        cfa.open_results(bombs[name])
    seconds = time.perf_counter() - start
    message = str(info.value)
    assert "\n" not in message and bombs[name].name in message and ENV[REASON[name]] in message, message
    assert seconds < 1.0, f"{seconds:.2f} s to refuse {name}"


def test_a_directory_that_would_combine_into_a_huge_grid_is_refused(combine_bomb, monkeypatch):
    monkeypatch.setenv("CORTEX_FA_MAX_BYTES", "16M")
    with pytest.raises(ResultsError, match=r"combining 30 run\(s\) would make a study of [\d,]+ decompressed bytes"):
        cfa.open_results(combine_bomb)
    monkeypatch.setenv("CORTEX_FA_MAX_RUNS", "899")
    with pytest.raises(ResultsError, match="900 runs, more than the limit of 899"):
        cfa.open_results(combine_bomb)
    monkeypatch.delenv("CORTEX_FA_MAX_RUNS")
    study = cfa.open_results(combine_bomb, limits={"bytes": "64MiB"})  # the keyword wins over the environment
    assert (study.sizes["seed"], study.sizes["batch_size"]) == (30, 30)


def test_a_glob_of_too_many_files_is_refused_before_opening_any(combine_bomb):
    with pytest.raises(ResultsError, match=r"holds 30 runs, more than the limit of 29"):
        cfa.open_results(str(combine_bomb / "*.nc"), limits={"runs": 29})


def test_limits_come_from_keyword_then_environment_then_defaults(monkeypatch, tmp_path):
    assert Limits.resolve() == Limits()
    monkeypatch.setenv("CORTEX_FA_MAX_BYTES", "4G")
    monkeypatch.setenv("CORTEX_FA_MAX_STEPS", "1_000_000")
    got = Limits.resolve({"steps": 7})
    assert (got.bytes, got.steps, got.layers) == (4 << 30, 7, Limits().layers)
    monkeypatch.setenv("CORTEX_FA_MAX_LAYERS", "lots")
    with pytest.raises(ResultsError, match="CORTEX_FA_MAX_LAYERS = 'lots' is not a positive integer"):
        Limits.resolve()
    monkeypatch.delenv("CORTEX_FA_MAX_LAYERS")
    with pytest.raises(ResultsError, match="unknown results limit 'step'.*did you mean 'steps'"):
        Limits.resolve({"step": 5})
    with pytest.raises(ResultsError, match="is not a positive integer"):
        Limits.resolve({"runs": 0})


def test_a_genuine_large_file_opens_once_the_limit_is_raised(tmp_path, monkeypatch):
    run = make_run_dataset(depth=1, epochs=1)
    wide = run.reindex(layer=np.arange(1, 1_201))  # 1,200 layers: real data, NaN-padded
    cfa.save_results(wide, tmp_path / "wide.nc")
    with pytest.raises(ResultsError, match="1,200 layers, more than the limit of 1,000"):
        cfa.open_results(tmp_path / "wide.nc")
    assert cfa.open_results(tmp_path / "wide.nc", limits={"layers": 2000}).sizes["layer"] == 1200
    monkeypatch.setenv("CORTEX_FA_MAX_LAYERS", "1200")
    assert cfa.open_results(tmp_path / "wide.nc").sizes["layer"] == 1200


# -- every command, as a real process under memory and time limits ------------------------------

def _limit_address_space():  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(argv, cwd, **extra_env) -> dict:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OPENBLAS_NUM_THREADS": "1", **extra_env}
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "cortex_fa.cli", *argv], cwd=cwd, capture_output=True, text=True,
                              timeout=TIMEOUT, preexec_fn=_limit_address_space, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "stderr": "", "seconds": TIMEOUT}
    return {"status": done.returncode, "stderr": done.stderr, "stdout": done.stdout,
            "seconds": time.monotonic() - start}


COMMANDS = {"report": lambda f: ["report", f], "plot": lambda f: ["plot", f],
            "serve": lambda f: ["serve", f, "--port", str(_free_port())]}
CLI_BOMBS = ("many-steps", "issue-16", "extra-dims", "many-vars-bytes")


@pytest.fixture(scope="module")
def cli_outcomes(bombs, combine_bomb, tmp_path_factory):
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for command, argv in COMMANDS.items():
            for name in CLI_BOMBS:
                cwd = tmp_path_factory.mktemp(f"{command}-{name}")
                (cwd / bombs[name].name).symlink_to(bombs[name])
                jobs[command, name] = pool.submit(_cli, argv(bombs[name].name), cwd)
    return {k: f.result() for k, f in jobs.items()}


@pytest.mark.slow
@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("name", CLI_BOMBS)
def test_every_command_refuses_a_bomb_in_one_line(cli_outcomes, command, name):
    got = cli_outcomes[command, name]
    err = got["stderr"].strip()
    assert got["status"] == 2, f"exit {got['status']} after {got['seconds']:.1f} s: {err[-1500:]}"
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("cortex-fa"), err
    assert f"{name}.nc declares" in err and ENV[REASON[name]] in err, err
    assert got["stdout"] == ""
    assert got["seconds"] < 30, f"{got['seconds']:.1f} s"  # interpreter start-up included


@pytest.mark.slow
def test_report_refuses_a_directory_that_would_combine_into_a_huge_grid(combine_bomb, tmp_path):
    got = _cli(["report", str(combine_bomb)], tmp_path, CORTEX_FA_MAX_BYTES="16M")
    err = got["stderr"].strip()
    assert got["status"] == 2 and len(err.splitlines()) == 1 and "combining 30 run(s)" in err, err
