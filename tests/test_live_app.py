"""The live source and the live app without a browser: waiting, growing, keeping selections, bad input."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("panel")

from cortex_fa import study  # noqa: E402
from cortex_fa.cli import main  # noqa: E402
from cortex_fa.config import RunConfig  # noqa: E402
from cortex_fa.errors import ConfigError  # noqa: E402
from cortex_fa.results import partial_path, save_results  # noqa: E402
from cortex_fa.training import train  # noqa: E402
from cortex_fa.viz.live import LiveSource, check_live_path  # noqa: E402
from cortex_fa.viz.live_app import LiveApp  # noqa: E402


@pytest.fixture(scope="module")
def runs(tiny_data):
    """Three tiny runs (bp depth 1, fa depth 1, fa depth 2) and a partial copy of the last."""
    base = RunConfig(hidden=(8,), epochs=2, train_subset=100, batch_size=50, probe_size=20)
    cfgs = [base.replace(rule="bp"), base.replace(rule="fa"), base.replace(rule="fa", hidden=(8, 8))]
    done = [train(c, tiny_data, progress=False) for c in cfgs]
    return cfgs, done


def write(run_dir, cfg, ds, partial=False):
    path = run_dir / f"{cfg.hash()}.nc"
    if partial:
        ds = ds.isel(step=slice(0, 3)).assign_attrs(status="running", partial=1)
        path = partial_path(path)
    save_results(ds, path)
    os.utime(path)  # a new mtime even within the file system's clock resolution
    return path


def test_a_source_waits_for_a_directory_then_follows_it(tmp_path, runs):
    cfgs, done = runs
    run_dir = tmp_path / "study.runs"  # does not exist yet
    source = LiveSource(run_dir, min_age=0)
    version, ds, progress = source.poll()
    assert ds is None and progress.done == progress.running == 0 and not progress.finished
    study.write_manifest(run_dir, {"spec": {}, "runs": sorted(c.hash() for c in cfgs)})
    write(run_dir, cfgs[0], done[0], partial=True)
    v1, ds, progress = source.poll()
    assert ds is not None and (progress.done, progress.running, progress.total) == (0, 1, 3)
    assert progress.latest_step == int(done[0]["step"].values[2])
    write(run_dir, cfgs[0], done[0])  # its final file wins over the partial one left behind
    write(run_dir, cfgs[1], done[1])
    v2, ds, progress = source.poll()
    assert v2 > v1 and (progress.done, progress.running) == (2, 0)
    assert sorted(ds["rule"].values.astype(str)) == ["bp", "fa"]
    assert source.poll()[0] == v2  # nothing changed on disk: nothing re-read
    write(run_dir, cfgs[2], done[2])
    _, ds, progress = source.poll()
    assert progress.finished and ds.sizes["n_hidden"] == 2
    assert "finished" in progress.text() and "total 3" in progress.text()


def test_a_truncated_partial_file_is_skipped_until_it_is_whole(tmp_path, runs):
    cfgs, done = runs
    good = write(tmp_path, cfgs[0], done[0])
    bad = write(tmp_path, cfgs[1], done[1], partial=True)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # cut mid-write by a foreign copier
    source = LiveSource(tmp_path, min_age=0)
    _, ds, progress = source.poll()
    assert progress.unreadable == 1 and progress.done == 1 and ds.attrs["rule"] == "bp"
    assert "unreadable" in progress.text() and good.exists()


def test_the_live_app_grows_and_keeps_the_users_selections(tmp_path, runs):
    cfgs, done = runs
    source = LiveSource(tmp_path, min_age=0)
    app = LiveApp(source)
    assert "waiting for results" in app.status.object and app.dashboard is None
    write(tmp_path, cfgs[0], done[0])
    write(tmp_path, cfgs[1], done[1], partial=True)
    app.tick()
    dash = app.dashboard
    assert dash is not None and dash.w["rules"].options == ["bp", "fa"]
    dash.w["rules"].value = ["fa"]  # the user switches bp off ...
    dash.w["metric"].value = "train_loss"  # ... and looks at another metric
    n_before = len(dash.figures["curves"].traverse(lambda x: x))
    write(tmp_path, cfgs[1], done[1])
    write(tmp_path, cfgs[2], done[2])
    app.tick()
    assert dash.w["rules"].value == ["fa"] and dash.w["metric"].value == "train_loss"
    assert dash.w["depth"].options == [1, 2]  # the new depth is offered; the choice stays
    assert dash.w["depth"].value == 1
    assert "runs done 3 / in flight 0" in dash.header.pane.object
    assert len(dash.figures["curves"].traverse(lambda x: x)) >= n_before


def test_live_paths_that_can_never_hold_results_are_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_live_path(tmp_path / "file" / "runs")
    assert check_live_path(tmp_path / "not" / "yet") == tmp_path / "not" / "yet"


@pytest.mark.parametrize("args, fragment", [
    (["--live", "{d}/file/runs"], "can never be created"),
    (["--live", "{d}/a", "{d}/b"], "watches one path"),
    (["{d}/empty"], "holds no .nc run files"),
    (["{d}/cut.partial.nc"], "not a readable NetCDF file"),
])
def test_serve_bad_input_is_one_line_and_status_2(tmp_path, capsys, args, fragment):
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "cut.partial.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)  # truncated mid-write
    argv = ["serve", *[a.format(d=tmp_path) for a in args], "--port", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


def test_serve_live_on_a_missing_directory_waits_for_it(tmp_path, monkeypatch, capsys):
    import cortex_fa.cli.serve as serve

    started = []
    monkeypatch.setattr(serve, "serve", lambda session, args, **kw: started.append(session()))
    assert main(["serve", "--live", str(tmp_path / "soon.runs"), "--port", "5999"]) == 0
    assert "watching" in capsys.readouterr().out
    (layout,) = started
    assert "waiting for results" in layout.live.status.object
