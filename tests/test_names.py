"""One set of names: plain xarray shows what :func:`cortex_fa.open_results` shows.

* A run file and a study file (synthetic, from ``tests/factories.py``; the
  study also sweeps a string option) read with plain ``xarray.open_dataset``
  have the dims, coordinate names, coordinate dims and values that
  ``open_results`` gives, and that the Dataset had before it was saved.
* ``layer_from_top``: 0 = readout, 1 = top hidden column, ..., per network
  depth in a study, missing on padded layers (on disk: int64, fill -1).
* Files written before this version (``docs/data``: ``n_hidden`` with a
  ``rule_label`` variable, and the v0.2 study with ``depth``) open with
  today's names; the committed files are only read.
* A run file plots by epoch with plain xarray and HoloViews, no reshaping.
"""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

import cortex_fa as cfa
from cortex_fa.config import RunConfig
from cortex_fa.study import combine_runs
from factories import make_run_dataset, make_study_dataset

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "docs" / "data").glob("*.nc"))
V02_STUDY = ROOT / "docs" / "data" / "depth_study_240x8ep.nc"


def _with_activation(run: xr.Dataset, activation: str) -> xr.Dataset:
    """The run as if trained with another ``activation`` (a string-valued option)."""
    config = RunConfig.from_json(run.attrs["config"]).replace(activation=activation)
    run = run.copy()
    run.attrs.update(config=config.to_json(), config_hash=config.hash())
    return run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("names")
    run = make_run_dataset("fa", depth=2, epochs=2)
    cfa.save_results(run, d / "run.nc")
    runs = [_with_activation(make_run_dataset(rule, depth, epochs=2, seed=0), act)
            for rule in ("bp", "fa") for depth in (1, 3) for act in ("tanh", "relu")]
    study = combine_runs(runs)
    cfa.save_results(study, d / "study.nc")
    return {"run": (run, d / "run.nc"), "study": (study, d / "study.nc")}


def assert_same_names(a: xr.Dataset, b: xr.Dataset) -> None:
    assert dict(a.sizes) == dict(b.sizes)
    assert set(a.coords) == set(b.coords) and set(a.indexes) == set(b.indexes)
    for name in a.coords:
        assert a[name].dims == b[name].dims, name
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


@pytest.mark.parametrize("kind", ["run", "study"])
def test_plain_xarray_and_open_results_give_the_same_names_and_values(files, kind):
    memory, path = files[kind]
    with xr.open_dataset(path) as raw:
        assert_same_names(raw, cfa.open_results(path))
        assert_same_names(raw, memory)
        assert "depth" not in raw.variables and not [v for v in raw.variables if v.endswith("_label")]
    if kind == "study":
        assert list(raw.indexes["rule"]) == ["bp", "fa"] and list(raw.indexes["activation"]) == ["relu", "tanh"]
        assert list(raw.indexes["n_hidden"]) == [1, 3]


def test_string_dims_are_char_arrays_on_disk(files):
    """Not ``string rule(rule)``: CF forbids a string coordinate variable (and the checker fails on one)."""
    with netCDF4.Dataset(files["study"][1]) as nc:
        for name in ("rule", "activation"):
            var = nc[name]
            assert var.dtype == np.dtype("S1") and var.dimensions[0] == name and len(var.dimensions) == 2, name
        assert "coordinates" not in nc["rule"].ncattrs()


def test_layer_from_top_counts_down_from_the_readout(files):
    run = cfa.open_results(files["run"][1])
    assert run["layer_from_top"].dims == ("layer",) and run["layer_from_top"].dtype == np.int64
    assert run["layer_from_top"].values.tolist() == [2, 1, 0]  # depth 2: column 1, column 2, readout
    study = cfa.open_results(files["study"][1])
    top = study["layer_from_top"]
    assert top.dims == ("n_hidden", "layer") and "long_name" in top.attrs
    np.testing.assert_array_equal(top.sel(n_hidden=1).values, [1, 0, np.nan, np.nan])  # padded layers 3, 4
    np.testing.assert_array_equal(top.sel(n_hidden=3).values, [3, 2, 1, 0])
    # what it is for: the top hidden column of every network, whatever its depth
    top_hidden = study["delta_alignment"].where(top == 1).max("layer")
    want = study["delta_alignment"].sel(layer=study["n_hidden"])
    np.testing.assert_array_equal(top_hidden.values, want.transpose(*top_hidden.dims).values)
    with netCDF4.Dataset(files["study"][1]) as nc:
        assert nc["layer_from_top"].dtype == np.int64 and nc["layer_from_top"]._FillValue == -1


def test_the_in_memory_study_has_layer_from_top_too():
    study = make_study_dataset(rules=("fa",), depths=(1, 2), seeds=(0,), epochs=1)
    assert study["layer_from_top"].sel(n_hidden=2).values.tolist() == [2.0, 1.0, 0.0]


@pytest.mark.parametrize("path", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_files_open_with_todays_names(path):
    with xr.open_dataset(path) as raw:  # the file as committed: old names
        old_depth = "depth" if "depth" in raw.dims else "n_hidden"
        depths = raw[old_depth].values.tolist()
        rules = raw["rule_label" if "rule_label" in raw.variables else "rule"].values.astype(str).tolist()
    ds = cfa.open_results(path)
    assert {"rule", "n_hidden", "seed", "step", "layer"} <= set(ds.indexes)
    assert "depth" not in ds.variables and "rule_label" not in ds.variables
    assert ds["n_hidden"].values.tolist() == depths and ds["rule"].values.astype(str).tolist() == rules
    top = ds["layer_from_top"]
    readout = top.where(top == 0).notnull().argmax("layer") + 1
    assert (readout == ds["n_hidden"] + 1).all()


def test_the_v02_study_is_read_as_it_was_committed():
    with xr.open_dataset(V02_STUDY) as raw:
        assert "depth" in raw.dims and raw.attrs["cortex_fa_version"] == "0.1.0"
    ds = cfa.open_results(V02_STUDY)
    assert ds.sizes["n_hidden"] == 4 and float(ds["test_accuracy"].sel(rule="fa", n_hidden=1).max()) > 0.9


def test_a_run_file_plots_by_epoch_with_plain_xarray_and_holoviews(files):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    hv = pytest.importorskip("holoviews")
    memory, path = files["run"]
    epoch = memory["epoch"].values
    with xr.open_dataset(path) as ds:
        assert "epoch" in ds.coords and ds["epoch"].dims == ("step",)
        (line,) = ds.test_accuracy.plot(x="epoch")
        np.testing.assert_array_equal(line.get_xdata(), epoch)
        lines = ds.delta_alignment.plot(x="epoch", hue="layer")
        assert len(lines) == 3 and all((ln.get_xdata() == epoch).all() for ln in lines)
        # HoloViews takes the arrays, or the data indexed by epoch (see the xfail below)
        curve = hv.Curve((ds.epoch, ds.test_accuracy), "epoch", "test_accuracy")
        np.testing.assert_array_equal(curve.dimension_values("test_accuracy"), memory["test_accuracy"].values)
        per_layer = hv.Dataset(ds.delta_alignment.swap_dims(step="epoch")).to(hv.Curve, "epoch")
        assert sorted(per_layer.keys()) == [1, 2, 3]
        np.testing.assert_array_equal(per_layer[2].dimension_values("epoch"), epoch)
        np.testing.assert_array_equal(per_layer[2].dimension_values("delta_alignment"),
                                      memory["delta_alignment"].sel(layer=2).values)
    matplotlib.pyplot.close("all")


@pytest.mark.xfail(strict=True, reason="HoloViews (1.23) cannot take a non-dimension coordinate of xarray data as "
                                       "an axis: holoviz/holoviews#6131; when this passes, simplify docs/schema.md")
def test_holoviews_plots_a_run_by_its_epoch_coordinate(files):
    hv = pytest.importorskip("holoviews")
    memory, path = files["run"]
    with xr.open_dataset(path) as ds:
        curve = hv.Curve(ds.test_accuracy, "epoch")
        np.testing.assert_array_equal(curve.dimension_values("test_accuracy"), memory["test_accuracy"].values)
