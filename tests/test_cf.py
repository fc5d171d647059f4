"""Results files that CF tools accept: the IOOS compliance checker, run for real.

* A run file (a tiny training run on synthetic digits) and a study file
  (runs over rule x depth x lr, combined from a directory of run files) pass
  ``compliance-checker --test cf:<the version they declare>`` with no failed
  check at any priority and no checker-internal exception (a crash inside a
  check, as string coordinates once caused, would hide what it checks).
* The committed v0.2 study (``docs/data/depth_study_240x8ep.nc``, dim ``depth``,
  ``CF-1.8``) still opens, and written again it passes the checker too.
* Plain xarray reads the names :func:`cortex_fa.open_results` gives: the
  network depth is ``n_hidden``, ``rule`` is a char-array variable that
  xarray reads as the ``rule`` index (more in ``tests/test_names.py``).
* ``history``: every write appends one ``<UTC time>: <command>`` line.
* The results modules import one way: cf, limits <- combine <- results <- study.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import cortex_fa as cfa
from cortex_fa.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
V02_STUDY = ROOT / "docs" / "data" / "depth_study_240x8ep.nc"
LABEL_STUDY = ROOT / "docs" / "data" / "lr_grid_240.nc"  # 0.3 development: n_hidden, rule_label(rule), swept lr
IN_CI = os.environ.get("CI") == "true"
HISTORY_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: \S.*$")


def checker() -> str:
    exe = shutil.which("compliance-checker") or str(Path(sys.executable).with_name("compliance-checker"))
    if not os.path.exists(exe):
        (pytest.fail if IN_CI else pytest.skip)("compliance-checker is not installed (pip install -e '.[test]')")
    return exe


def check_cf(path: Path) -> tuple[str, dict]:
    """Run the checker for the CF version ``path`` declares; return (version, JSON report)."""
    with xr.open_dataset(path, engine="netcdf4") as ds:
        conventions = ds.attrs["Conventions"]
    version = re.fullmatch(r"CF-(\d+\.\d+)", conventions)[1]
    out = path.with_suffix(".cf.json")
    done = subprocess.run([checker(), "--test", f"cf:{version}", "--format", "json", "--output", str(out), str(path)],
                          capture_output=True, text=True, timeout=300)
    assert out.exists(), f"the checker wrote no report (exit {done.returncode}): {done.stderr[-2000:]}"
    assert "exceptions occurred" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-2000:]
    return version, json.loads(out.read_text())[f"cf:{version}"]


def failures(report: dict) -> list[str]:
    """Every failed check, with its priority and messages."""
    out = []
    for level in ("high_priorities", "medium_priorities", "low_priorities"):
        for item in report[level]:
            got, possible = item["value"]
            if got < possible:
                out.append(f"{level.split('_')[0]}: {item['name']}: {'; '.join(item['msgs'])}")
    return out


def assert_cf_clean(path: Path) -> None:
    version, report = check_cf(path)
    assert report["high_count"] == 0 and report["medium_count"] == 0 and report["low_count"] == 0, failures(report)
    assert not failures(report), failures(report)
    assert report["scored_points"] == report["possible_points"] > 0
    assert version == "1.9"  # int64 variables need CF-1.9; nothing in the files needs more


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_data):
    """A run file and a study combined from a directory of run files, all from real (tiny) training."""
    d = tmp_path_factory.mktemp("cf")
    (d / "runs").mkdir()
    for rule in ("bp", "fa"):
        for hidden in ((16,), (16, 16)):
            for lr in (0.1, 0.05):  # given out of order: stored sorted, as CF asks of a coordinate
                config = RunConfig(rule=rule, hidden=hidden, lr=lr, epochs=1, batch_size=100, probe_size=100, seed=0)
                ds = cfa.train(config, tiny_data, progress=False)
                cfa.save_results(ds, d / "runs" / f"{config.hash()}.nc")
    run = sorted((d / "runs").glob("*.nc"))[0]
    study = cfa.open_results(d / "runs")
    cfa.save_results(study, d / "study.nc")
    return {"run": run, "study": d / "study.nc", "in_memory": study, "dir": d}


def test_run_file_passes_the_cf_checker(files):
    assert_cf_clean(files["run"])


def test_study_file_passes_the_cf_checker(files):
    sizes = files["in_memory"].sizes
    assert set(sizes) == {"rule", "n_hidden", "seed", "lr", "step", "layer"}
    assert (sizes["rule"], sizes["n_hidden"], sizes["lr"], sizes["layer"]) == (2, 2, 2, 3)
    assert_cf_clean(files["study"])


def test_v02_study_still_opens_and_rewritten_passes_the_checker(tmp_path):
    old = cfa.open_results(V02_STUDY)
    with xr.open_dataset(V02_STUDY, engine="netcdf4") as raw:
        assert "depth" in raw.dims and raw.attrs["Conventions"] == "CF-1.8"  # the file is a v0.2 file
    assert {"rule", "n_hidden", "seed", "step", "layer"} <= set(old.dims) and "depth" not in old.variables
    cfa.save_results(old, tmp_path / "v03.nc")
    assert_cf_clean(tmp_path / "v03.nc")
    new = cfa.open_results(tmp_path / "v03.nc")
    for name in old.data_vars:
        np.testing.assert_array_equal(new[name].values, old[name].values, err_msg=name)
    assert list(new.rule.values) == list(old.rule.values) and list(new.n_hidden.values) == list(old.n_hidden.values)


def test_a_03_development_study_rewritten_passes_the_checker(tmp_path):
    """``rule_label`` comes back as the ``rule`` index and leaves no trace in the file written again."""
    old = cfa.open_results(LABEL_STUDY)
    cfa.save_results(old, tmp_path / "again.nc")
    assert_cf_clean(tmp_path / "again.nc")
    with xr.open_dataset(tmp_path / "again.nc", engine="netcdf4") as raw:
        assert "rule_label" not in raw.variables and list(raw.indexes["rule"]) == list(old.indexes["rule"])
        assert all("rule_label" not in raw[v].encoding.get("coordinates", "") for v in raw.variables)
    assert "rule_label" in old["test_accuracy"].encoding.get("coordinates", "")  # what there was to drop
    assert "coordinates" in old["test_accuracy"].encoding  # saving left the Dataset passed in alone


def test_plain_xarray_reads_the_names_open_results_gives(files):
    with xr.open_dataset(files["study"], engine="netcdf4") as raw:
        assert "depth" not in raw.variables and "n_hidden" in raw.indexes and "rule_label" not in raw.variables
        assert list(raw.indexes["rule"]) == ["bp", "fa"] and raw["rule"].dims == ("rule",)
        assert list(raw["lr"].values) == [0.05, 0.1]
        assert raw["n_hidden"].attrs["long_name"].startswith("network depth")
        assert raw["layer_from_top"].dims == ("n_hidden", "layer")
        for name in raw.coords:
            assert "long_name" in raw[name].attrs, name
            assert ("units" in raw[name].attrs) == (raw[name].dtype.kind in "iuf"), name
    back = cfa.open_results(files["study"])
    assert {"rule", "n_hidden", "lr"} <= set(back.indexes)
    assert back.sel(rule="fa", n_hidden=2, lr=0.1)["test_accuracy"].notnull().any()
    want = files["in_memory"].sortby("lr")
    np.testing.assert_array_equal(back["delta_alignment"].values, want["delta_alignment"].values)


def test_each_write_appends_one_history_line(files, tmp_path):
    run = cfa.open_results(files["run"])
    first = run.attrs["history"].splitlines()
    assert len(first) == 1 and HISTORY_LINE.match(first[0]) and "cortex_fa.save_results" in first[0], first
    cfa.save_results(run, tmp_path / "again.nc", history="test: written again")
    assert run.attrs["history"].splitlines() == first  # the Dataset passed in is left alone
    lines = cfa.open_results(tmp_path / "again.nc").attrs["history"].splitlines()
    assert lines[:1] == first and len(lines) == 2 and HISTORY_LINE.match(lines[1]), lines
    assert lines[1].endswith(": test: written again"), lines


@pytest.mark.mnist
def test_cortex_fa_run_records_its_command_line(tmp_path):
    argv = ["run", "--rule", "fa", "--hidden", "16", "--train-subset", "600", "--epochs", "1", "--probe-size", "100",
            "--quiet", "--out", "r.nc"]
    done = subprocess.run([sys.executable, "-m", "cortex_fa.cli", *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = cfa.open_results(tmp_path / "r.nc").attrs["history"].splitlines()
    assert HISTORY_LINE.match(line) and line.split(": ", 1)[1] == "cortex-fa " + " ".join(argv), line
    assert_cf_clean(tmp_path / "r.nc")


def test_the_cli_entry_points_count_as_cortex_fa():
    """``python -m cortex_fa.cli`` (argv[0] is cli/__main__.py) is recorded as ``cortex-fa``."""
    code = ("import sys, cortex_fa as cfa; sys.argv = [sys.argv[1], 'run', '--rule', 'fa', '--out', 'x.nc']; "
            "from cortex_fa.cf import invocation; print(invocation())")
    main = str(ROOT / "cortex_fa" / "cli" / "__main__.py")
    out = subprocess.run([sys.executable, "-c", code, main], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "cortex-fa run --rule fa --out x.nc", out.stdout + out.stderr


MODULES = ("cf", "limits", "combine", "results", "study")
FLOOR = {"cf": 0, "limits": 1, "combine": 2, "results": 3, "study": 4}  # limits reads cf's run-internal dims


def _imports(name: str) -> set[str]:
    tree = ast.parse((ROOT / "cortex_fa" / f"{name}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):  # module level and inside functions alike
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m.split(".")[1] for m in found if m.startswith("cortex_fa.") and m.split(".")[1] in MODULES}


def test_results_modules_import_one_way_only():
    for name in MODULES:
        upward = {m for m in _imports(name) if FLOOR[m] >= FLOOR[name]}
        assert not upward, f"cortex_fa.{name} imports {sorted(upward)} from its own floor or above"
    from cortex_fa import results, study

    assert study.combine_runs is results.combine_runs  # one function, one public name each
    assert cfa.open_results is results.open_results
