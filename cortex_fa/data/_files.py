"""The four MNIST files and their digests: the floor that loading and fetching stand on.

:mod:`cortex_fa.data.mnist` (verify, cache, load) calls :mod:`cortex_fa.data.fetch`
(download routes), and both check files against the one table here, so neither
has to import the other for it. Both re-use the same dict object: patching
``cortex_fa.data.mnist.SHA256`` in place patches what the routes check too.
"""

from __future__ import annotations

from pathlib import Path

#: SHA-256 of the uncompressed IDX files, in the order used by ``data_sha256``.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: The file names, in :data:`SHA256` order.
FILES = tuple(SHA256)


def mismatch(path: Path, actual: str) -> str:
    """The one message for a file whose SHA-256 ``actual`` is not the expected one."""
    return f"{path} has SHA-256 {actual}, expected {SHA256[path.name]} (corrupted or truncated)"
