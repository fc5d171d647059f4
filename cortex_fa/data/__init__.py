"""MNIST data layer: fetch, verify, cache and load the IDX files.

Typical use::

    from cortex_fa.data import load_mnist
    ds = load_mnist()             # fetches into the cache on first use
    ds.train_images.shape         # (60000, 784), uint8
    ds.data_sha256                # one digest to store with results
"""

from cortex_fa.data.idx import pair_images_labels, parse_idx, read_idx
from cortex_fa.data.mnist import (
    FILES,
    MNIST,
    SHA256,
    combined_sha256,
    default_cache_dir,
    fetch_mnist,
    load_mnist,
    mnist_info,
    pixel_stats,
    verify_mnist,
)

__all__ = [
    "FILES",
    "MNIST",
    "SHA256",
    "combined_sha256",
    "default_cache_dir",
    "fetch_mnist",
    "load_mnist",
    "mnist_info",
    "pair_images_labels",
    "parse_idx",
    "pixel_stats",
    "read_idx",
    "verify_mnist",
]
