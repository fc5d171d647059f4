"""Parser for the IDX format in which MNIST is distributed.

An IDX file is a 4-byte magic number followed by its dimensions and the raw
array, all big-endian:

====== ========================================================
bytes  meaning
====== ========================================================
0-1    zero
2      element type code (only ``0x08``, unsigned byte, here)
3      number of dimensions ``ndim``
4..    ``ndim`` unsigned 32-bit sizes, then ``prod(sizes)`` items
====== ========================================================

Every check raises :class:`~cortex_fa.errors.DataError` with a message that
names the file, so a bad download is reported rather than silently reshaped.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from cortex_fa.errors import DataError

__all__ = ["UBYTE", "parse_idx", "read_idx", "pair_images_labels"]

#: IDX element type code of unsigned bytes, the only type MNIST uses.
UBYTE = 0x08

# Type codes of the IDX spec, only so that the error can say what was found.
_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32",
               0x0D: "float32", 0x0E: "float64"}


def parse_idx(data, name: str = "<bytes>", *, ndim: int | None = None) -> np.ndarray:
    """Parse the bytes of an uncompressed unsigned-byte IDX file.

    Parameters
    ----------
    data : bytes-like
        The whole file content.
    name : str
        File name used in error messages.
    ndim : int, optional
        Required number of dimensions (3 for images, 1 for labels).

    Returns
    -------
    numpy.ndarray
        A read-only ``uint8`` view of ``data`` with the shape in the header;
        no copy is made, which keeps loading MNIST fast.

    Raises
    ------
    DataError
        If the magic number, the type code, the number of dimensions or the
        length of the file is wrong.
    """
    view = memoryview(data).cast("B")
    if len(view) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(view)} bytes)")
    zero, code, nd = struct.unpack(">HBB", view[:4])
    if zero != 0:
        raise DataError(f"{name}: not an IDX file (bad magic number 0x{bytes(view[:4]).hex()})")
    if code != UBYTE:
        found = _TYPE_NAMES.get(code, "unknown")
        raise DataError(f"{name}: IDX type code 0x{code:02x} ({found}), expected 0x08 (uint8)")
    if ndim is not None and nd != ndim:
        raise DataError(f"{name}: IDX file has {nd} dimensions, expected {ndim}")
    header = 4 + 4 * nd
    if len(view) < header:
        raise DataError(f"{name}: truncated IDX header ({len(view)} of {header} bytes)")
    shape = struct.unpack(f">{nd}I", view[4:header])
    # Python ints: the product of the sizes cannot overflow.
    expected = header + int(np.prod(shape, dtype=object)) if nd else header
    if len(view) != expected:
        kind = "truncated" if len(view) < expected else "has extra bytes"
        raise DataError(
            f"{name}: IDX file {kind}: {len(view)} bytes, expected {expected} for shape {shape}"
        )
    array = np.frombuffer(view, dtype=np.uint8, offset=header).reshape(shape)
    array.flags.writeable = False
    return array


def read_idx(path, *, ndim: int | None = None) -> np.ndarray:
    """Read and parse an IDX file from disk (see :func:`parse_idx`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_idx(data, path.name, ndim=ndim)


def pair_images_labels(images: np.ndarray, labels: np.ndarray, *,
                       images_name: str = "images", labels_name: str = "labels"):
    """Check that an image and a label array belong together and flatten images.

    Parameters
    ----------
    images : numpy.ndarray
        Shape ``(n, rows, cols)``, as parsed from an ``idx3`` file.
    labels : numpy.ndarray
        Shape ``(n,)``, as parsed from an ``idx1`` file.
    images_name, labels_name : str
        File names used in error messages.

    Returns
    -------
    tuple of numpy.ndarray
        ``(images.reshape(n, rows * cols), labels)``; rows are examples.
    """
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(
            f"{images_name}/{labels_name}: expected 3-d images and 1-d labels, "
            f"got {images.ndim}-d and {labels.ndim}-d"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_name} has {images.shape[0]} images but "
            f"{labels_name} has {labels.shape[0]} labels"
        )
    return images.reshape(images.shape[0], -1), labels
