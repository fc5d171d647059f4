"""Shared fixtures: small synthetic digits for unit tests, the real MNIST for the rest."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest


def make_tiny_data(n_train=600, n_test=200, seed=0):
    """MNIST-shaped uint8 data: 10 noisy prototypes, learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, size=(10, 784))
    def draw(n):
        labels = rng.integers(0, 10, n)
        images = np.clip(protos[labels] + rng.normal(0, 90, (n, 784)), 0, 255).astype(np.uint8)
        return images, labels.astype(np.uint8)
    tr, trl = draw(n_train)
    te, tel = draw(n_test)
    return SimpleNamespace(train_images=tr, train_labels=trl, test_images=te, test_labels=tel, data_sha256="synthetic")


@pytest.fixture(scope="session")
def tiny_data():
    return make_tiny_data()


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST through the package's own fetch/verify path."""
    from cortex_fa.data import load_mnist

    return load_mnist(progress=False)
