"""Installable and shareable: the presets travel with the package, and a core install works.

Fast, on the development install:

* the packaged presets are ``models/*.toml``, found through :mod:`importlib.resources`;
* pyproject lists every subpackage (its package list is explicit, see there);
* ``$CORTEX_FA_MODELS_DIR`` adds presets, overrides one with a note naming both
  files, and refuses a missing folder or a malformed preset in one line (exit 2);
  no presets at all is exit 2 naming where it looked;
* :func:`cortex_fa.extras.require` names the extra and the ``pip install`` for it.

Slow (built once per session, about two minutes on 2 cores):

* ``python -m build`` makes an sdist and a wheel with no warning, ``twine check
  --strict`` passes, and both carry ``models/*.toml`` byte for byte and the licence;
* a fresh virtual environment with the wheel and the core dependencies only (no
  extra): ``--version``; the preset list equals the checkout's and comes from
  site-packages; a short run on the cached MNIST, its report, ``data verify``;
  every command that needs an extra exits 2 with one line naming it and its
  ``pip install``, and writes nothing; every module of the wheel imports or raises
  that one line, and so do the public functions that need an extra.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from cortex_fa import presets
from cortex_fa.cli import SUBCOMMANDS, main
from cortex_fa.errors import BackendUnavailable

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted(p.name for p in (ROOT / "models").glob("*.toml"))


# -- presets on the development install ------------------------------------------------

def test_packaged_presets_are_the_models_folder_through_importlib_resources(monkeypatch):
    monkeypatch.delenv(presets.ENV, raising=False)
    folder = presets.packaged_dir()
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".toml")) == MODELS
    # Installed (editable or not), the folder is the package data, not a guess next to the code.
    import importlib.resources

    assert str(folder) == str(importlib.resources.files("cortex_fa._models"))
    assert presets.available() == tuple(name[:-5] for name in MODELS)


def test_pyproject_lists_every_subpackage():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "cortex_fa").rglob("__init__.py")
               if "__pycache__" not in p.parts}
    assert on_disk | {"cortex_fa._models"} == listed, "add the new subpackage to [tool.setuptools] packages"
    assert config["package-dir"] == {"cortex_fa._models": "models"}


def _reproduce(capsys, *args) -> tuple[int, str, list[str]]:
    status = main(["reproduce", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err.strip().splitlines()


def test_models_dir_adds_and_overrides_with_a_note_naming_both_files(tmp_path, monkeypatch, capsys):
    extra = tmp_path / "mine"
    extra.mkdir()
    own = (ROOT / "models" / "lillicrap2016.toml").read_text().replace('title = "', 'title = "MINE ', 1)
    (extra / "lillicrap2016.toml").write_text(own)
    (extra / "tiny.toml").write_text('[preset]\ntitle = "a tiny preset"\n[sweep]\nrules = ["fa"]\n')
    monkeypatch.setenv(presets.ENV, str(extra))
    status, out, err = _reproduce(capsys)
    assert status == 0
    listed = dict(line.split(None, 1) for line in out.splitlines())
    assert set(listed) == {name[:-5] for name in MODELS} | {"tiny"}
    assert listed["tiny"] == "a tiny preset" and listed["lillicrap2016"].startswith("MINE ")
    assert len(err) == 1 and "note" in err[0]
    assert str(extra / "lillicrap2016.toml") in err[0] and str(ROOT / "models" / "lillicrap2016.toml") in err[0]
    assert presets.load("lillicrap2016").path == extra / "lillicrap2016.toml"


@pytest.mark.parametrize("setup, words", [
    ("missing", ["CORTEX_FA_MODELS_DIR=", "does not exist"]),
    ("file", ["CORTEX_FA_MODELS_DIR=", "is a file"]),
    ("bad_toml", ["a_broken.toml", "not valid TOML"]),
    ("bad_preset", ["a_broken.toml", "lr must be > 0", "mine"]),
])
def test_bad_models_dir_is_one_line_and_exit_2(setup, words, tmp_path, monkeypatch, capsys):
    target = tmp_path / "mine"
    if setup == "file":
        target.write_text("not a folder")
    elif setup.startswith("bad"):
        target.mkdir()
        body = "[sweep\nrules = " if setup == "bad_toml" else '[sweep]\nrules = ["bp"]\n[run]\nlr = -1\n'
        (target / "a_broken.toml").write_text(body)  # listed first
    monkeypatch.setenv(presets.ENV, str(target))
    status, out, err = _reproduce(capsys)
    assert status == 2 and out == ""
    assert len(err) == 1 and err[0].startswith("cortex-fa: error:"), err
    assert all(word in err[0] for word in words), err[0]


def test_no_presets_at_all_is_exit_2_naming_where_it_looked(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(presets, "packaged_dir", lambda: None)  # as if the package data were lost
    monkeypatch.setenv(presets.ENV, str(empty))
    for args in ((), ("depth_study", "--quick")):
        status, out, err = _reproduce(capsys, *args)
        assert status == 2 and out == ""
        assert len(err) == 1 and "no presets found" in err[0] and str(empty) in err[0], err
        assert presets.PACKAGE in err[0]
    assert list(empty.iterdir()) == [] and not list(Path.cwd().glob("depth_study*"))


def test_require_names_the_extra_and_the_install_command(monkeypatch):
    from cortex_fa import extras

    monkeypatch.setitem(extras.EXTRAS, "nothing", ("json", "cortex_fa_no_such_module"))
    with pytest.raises(BackendUnavailable) as info:
        extras.require("nothing", "this feature")
    message = str(info.value)
    assert "\n" not in message and info.value.name == "cortex_fa_no_such_module"
    assert message == ("this feature needs the 'nothing' extra (cortex_fa_no_such_module is not installed): "
                       "pip install 'cortex_fa[nothing]'")
    assert extras.missing("dask") is None  # the development install has every extra


def test_noxfile_has_a_session_per_python_and_finds_each_interpreter():
    listed = subprocess.run([sys.executable, "-m", "nox", "--list", "--json"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert listed.returncode == 0, listed.stderr[-2000:]
    sessions = {s["session"]: s["python"] for s in json.loads(listed.stdout)}
    assert sessions == {"tests-3.11": "3.11", "tests-3.12": "3.12", "tests-3.13": "3.13"}
    # The interpreters nox will use: found on the PATH the noxfile sets, and of the right version.
    script = ("import runpy, shutil, subprocess; ns = runpy.run_path('noxfile.py'); "
              "print([subprocess.run([shutil.which('python' + v), '-c', 'import sys; print(sys.version_info[:2])'], "
              "capture_output=True, text=True).stdout.strip() for v in ns['PYTHONS']])")
    found = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert found.stdout.strip() == "['(3, 11)', '(3, 12)', '(3, 13)']", found.stdout + found.stderr[-2000:]


# -- the built distributions -----------------------------------------------------------

def _clean_env(drop=(), **extra) -> dict:
    """The environment without this venv's traces (and without the user's preset folder)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", presets.ENV, *drop)}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def dists(tmp_path_factory):
    """``python -m build`` of the checkout: (sdist, wheel, combined output)."""
    out = tmp_path_factory.mktemp("dist")
    # PYTHONDONTWRITEBYTECODE (set on this machine) alone makes setuptools warn that it
    # skips byte-compiling: a property of the environment, not of the package.
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                          env=_clean_env(drop=("PYTHONDONTWRITEBYTECODE",)),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sdist,), (wheel,) = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    return sdist, wheel, proc.stdout + proc.stderr


@pytest.mark.slow
def test_build_has_no_warnings_and_twine_check_passes(dists):
    sdist, wheel, log = dists
    # Any line that warns (a file being copied may have "warn" in its name: not those).
    warnings = [line for line in log.splitlines()
                if re.search(r"warn", line, re.I) and not re.match(r"(copying|adding|creating) ", line)]
    assert not warnings, "\n".join(warnings[:20])
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2


@pytest.mark.slow
def test_sdist_and_wheel_carry_the_presets_and_the_licence(dists):
    sdist, wheel, _ = dists
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        in_wheel = {n.rsplit("/", 1)[1]: zf.read(n) for n in names if re.fullmatch(r"cortex_fa/_models/[^/]+\.toml", n)}
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    with tarfile.open(sdist) as tf:
        top = tf.getnames()[0].split("/")[0]
        in_sdist = {Path(m.name).name: tf.extractfile(m).read() for m in tf.getmembers()
                    if re.fullmatch(rf"{top}/models/[^/]+\.toml", m.name)}
        assert f"{top}/LICENSE" in tf.getnames()
    checkout = {name: (ROOT / "models" / name).read_bytes() for name in MODELS}
    assert in_wheel == checkout and in_sdist == checkout
    assert "License-Expression: BSD-3-Clause" in metadata and "License-File: LICENSE" in metadata


# -- a core-only install from the wheel ------------------------------------------------

@pytest.fixture(scope="session")
def core_venv(dists, tmp_path_factory):
    """A fresh virtual environment holding the wheel and its core dependencies only."""
    venv = tmp_path_factory.mktemp("core") / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
    if made.returncode != 0:  # Debian without python3-venv (as scripts/env.sh does)
        subprocess.run([sys.executable, "-m", "virtualenv", "--quiet", str(venv)], check=True, timeout=300)
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile", str(dists[1])],
                          env=_clean_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return venv


def _data_dir() -> str:
    from cortex_fa.data import default_cache_dir

    return os.environ.get("CORTEX_FA_DATA_DIR") or str(default_cache_dir())


def _cli(venv: Path, cwd: Path, *args, **env) -> subprocess.CompletedProcess:
    path = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run([str(venv / "bin" / "cortex-fa"), *args], cwd=cwd, env=_clean_env(PATH=path, **env),
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def core_run(core_venv, tmp_path_factory):
    """A run file written by the core install from the cached MNIST (the smoke test's run)."""
    where = tmp_path_factory.mktemp("core_run")
    # 100 updates (2,000 images in batches of 20): enough to learn well past chance, in seconds
    proc = _cli(core_venv, where, "run", "--train-subset", "2000", "--batch-size", "20", "--lr", "0.1",
                "--epochs", "1", "--quiet", "--out", "run.nc", "--data-dir", _data_dir())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "wrote run.nc"
    return where / "run.nc"


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory):
    """A small run file (synthetic digits, written here) for the commands that read one."""
    import cortex_fa as cfa

    path = tmp_path_factory.mktemp("tiny_run") / "run.nc"
    cfa.save_results(cfa.train(cfa.RunConfig(hidden=(16,), epochs=1, probe_size=100), tiny_data, progress=False), path)
    return path


@pytest.mark.slow
def test_core_install_has_no_extra(core_venv):
    script = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])" % (
        ["dask", "distributed", "holoviews", "bokeh", "panel", "matplotlib", "brian2"],)
    proc = subprocess.run([str(core_venv / "bin" / "python"), "-c", script], capture_output=True, text=True,
                          env=_clean_env(), cwd=core_venv)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.mnist
def test_wheel_smoke_version_presets_and_a_short_run(core_venv, core_run, tmp_path):
    import cortex_fa

    proc = _cli(core_venv, tmp_path, "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"cortex-fa {cortex_fa.__version__}"
    listing = _cli(core_venv, tmp_path, "reproduce")
    assert listing.returncode == 0 and listing.stderr == "", listing.stderr
    names = [line.split()[0] for line in listing.stdout.splitlines()]
    assert names == [name[:-5] for name in MODELS]  # the checkout's presets, in order
    where = subprocess.run([str(core_venv / "bin" / "python"), "-c",
                            "from cortex_fa import presets; print(presets.packaged_dir())"],
                           capture_output=True, text=True, env=_clean_env(), cwd=tmp_path).stdout.strip()
    assert where.startswith(str(core_venv)) and where.endswith("cortex_fa/_models"), where
    import xarray as xr

    with xr.open_dataset(core_run) as ds:
        assert ds.attrs["status"] == "ok" and float(ds.test_accuracy.isel(step=-1)) > 0.5


@pytest.mark.slow
@pytest.mark.mnist
def test_core_install_shadowing_note_names_the_installed_file(core_venv, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(ROOT / "models" / "depth_study.toml", mine / "depth_study.toml")
    proc = _cli(core_venv, tmp_path, "reproduce", **{presets.ENV: str(mine)})
    assert proc.returncode == 0
    (note,) = proc.stderr.strip().splitlines()
    assert str(mine / "depth_study.toml") in note and str(core_venv) in note and "_models/depth_study.toml" in note
    missing = _cli(core_venv, tmp_path, "reproduce", **{presets.ENV: str(tmp_path / "nope")})
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "Traceback" not in missing.stderr and "does not exist" in missing.stderr


# command -> (arguments, None if it works else the extra it must name); {run} is a run file.
MATRIX = {
    "data verify": (["data", "verify", "--data-dir", "{data}"], None),
    "data info": (["data", "info", "--data-dir", "{data}"], None),
    "report": (["report", "{run}"], None),
    "reproduce list": (["reproduce"], None),
    "run brian2": (["run", "--backend", "brian2", "--train-subset", "500", "--epochs", "1", "--out", "b.nc",
                    "--data-dir", "{data}"], "brian2"),
    "sweep": (["sweep", "--rules", "fa", "--depths", "1", "--train-subset", "500", "--epochs", "1",
               "--out", "s.nc", "--data-dir", "{data}"], "dask"),
    "sweep scheduler": (["sweep", "--rules", "fa", "--out", "s.nc", "--scheduler", "tcp://127.0.0.1:9"], "dask"),
    "reproduce run": (["reproduce", "depth_study", "--quick"], "dask"),
    "protocol select": (["protocol", "select", "depth_protocol", "--quick", "--depths", "1", "--out", "sel.nc",
                         "--data-dir", "{data}"], "dask"),
    "plot": (["plot", "{run}", "--out", "figs"], "app"),
    "serve": (["serve", "{run}", "--port", "9"], "app"),
}


def test_matrix_covers_every_subcommand():
    assert {args[0] for args, _ in MATRIX.values()} | {"run"} == set(SUBCOMMANDS)  # run: the smoke test


@pytest.mark.slow
@pytest.mark.mnist
@pytest.mark.parametrize("name", list(MATRIX))
def test_core_install_command_works_or_names_the_extra(name, core_venv, tiny_run, tmp_path):
    args, extra = MATRIX[name]
    shutil.copy(tiny_run, tmp_path / "run.nc")
    args = [a.format(run="run.nc", data=_data_dir()) for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _cli(core_venv, tmp_path, *args)
    assert "Traceback" not in proc.stderr, proc.stderr
    if extra is None:
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cortex-fa: error:"), proc.stderr
    assert extra in lines[0].split("pip install")[0] and lines[0].endswith(f"pip install 'cortex_fa[{extra}]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "wrote something before refusing"


API_SCRIPT = r'''
import importlib, json, sys, types
from pathlib import Path
import numpy as np
import cortex_fa
from cortex_fa.errors import BackendUnavailable

def outcome(call):
    try:
        call()
        return "ok"
    except BackendUnavailable as exc:
        return "extra: " + str(exc)
    except Exception as exc:
        return f"FAILED {type(exc).__name__}: {exc}"

root = Path(cortex_fa.__file__).parent
names = sorted(".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
               for p in root.rglob("*.py"))
result = {name: outcome(lambda name=name: importlib.import_module(name)) for name in names}

from cortex_fa import cluster, sweep
out = Path(sys.argv[1])
tiny = types.SimpleNamespace(train_images=np.zeros((100, 784), np.uint8), train_labels=np.zeros(100, np.uint8),
                             test_images=np.zeros((10, 784), np.uint8), test_labels=np.zeros(10, np.uint8),
                             data_sha256="zeros")
calls = {
    "sweep.run_sweep": lambda: sweep.run_sweep(sweep.SweepSpec.from_table({"rules": ["fa"]}), out / "s.nc"),
    "cluster.connect": lambda: cluster.connect(),
    "cluster.check_address": lambda: cluster.check_address("tcp://127.0.0.1:9"),
    "cluster.check_security": lambda: cluster.check_security("tls://127.0.0.1:9", "tls"),
    "sweep.run_task": lambda: sweep.run_task(cortex_fa.RunConfig().to_dict(), str(out)),
    "train brian2": lambda: cortex_fa.train(cortex_fa.RunConfig(backend="brian2", epochs=1), tiny, progress=False),
}
result.update({name: outcome(call) for name, call in calls.items()})
print(json.dumps(result))
'''


@pytest.mark.slow
def test_core_install_modules_and_public_functions_import_or_name_the_extra(core_venv, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([str(core_venv / "bin" / "python"), "-c", API_SCRIPT, str(work)], cwd=tmp_path,
                          env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    def needs(name):
        if name.startswith("cortex_fa.viz"):
            return "app"
        if name.startswith("cortex_fa.backends.brian2"):
            return "brian2"
        if name.startswith(("sweep.", "cluster.")):
            return "dask"
        return {"train brian2": "brian2"}.get(name)

    assert "cortex_fa.presets" in result and "cortex_fa._models" in result and len(result) > 40
    wrong = {}
    for name, got in result.items():
        extra = needs(name)
        expected_start = "ok" if extra is None else "extra: "
        if not got.startswith(expected_start) or (extra and f"pip install 'cortex_fa[{extra}]'" not in got) \
                or "\n" in got:
            wrong[name] = got
    assert not wrong, json.dumps(wrong, indent=1)
    assert list(work.iterdir()) == []
