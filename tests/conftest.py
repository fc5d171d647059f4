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


# -- running on pytest-xdist workers (scripts/test.sh: -n 2 --dist loadgroup) --------------

def _uses_own_shared_fixture(item) -> bool:
    """Does the test use a module- or session-scoped fixture defined in its own file?"""
    info = getattr(item, "_fixtureinfo", None)
    module = getattr(item, "module", None)
    if info is None or module is None:
        return False
    for defs in info.name2fixturedefs.values():
        last = defs[-1]
        if last.scope in ("module", "session") and getattr(last.func, "__module__", None) == module.__name__:
            return True
    return False


def pytest_collection_modifyitems(config, items):
    """Group what must share a worker, and hand out the slow tests first.

    A file whose tests share an expensive fixture of its own (a batch of CLI
    runs, a built wheel, a trained study) stays on one worker, so the fixture
    is made once; a test marked ``spread`` opts out (its cases are long and the
    fixture is cheap next to them). Every other test is scheduled on its own.
    Slow tests go first so that no long test starts last and holds up the run.
    """
    grouped, slow_groups = set(), set()
    for item in items:
        if item.get_closest_marker("xdist_group") is None and item.get_closest_marker("spread") is None \
                and _uses_own_shared_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
            grouped.add(item.nodeid)
            if item.get_closest_marker("slow"):
                slow_groups.add(item.module.__name__)

    def later(item) -> bool:
        # a grouped file moves as a whole: split, its module fixture would be torn down and made again
        if item.nodeid in grouped:
            return item.module.__name__ not in slow_groups
        return item.get_closest_marker("slow") is None

    items.sort(key=later)  # stable: file order otherwise
