"""Shared fixtures: small synthetic digits for unit tests, the real MNIST for the rest."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
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
#
# xdist's own loadgroup tells the controller a test's group by appending "@group" to its
# node id, which pytest 9 no longer takes (structured node ids: pytest-dev/pytest-xdist#1386,
# the groups are silently ignored and a module fixture is made on both workers). Here each
# worker writes the groups it collected to a file, and the controller's scheduler reads
# them: node ids stay pytest's own, on any pytest.
GROUPS_ENV = "CORTEX_FA_TEST_GROUPS"


def pytest_configure(config):
    if getattr(config.option, "dist", "no") == "loadgroup" and not hasattr(config, "workerinput"):
        folder = tempfile.mkdtemp(prefix="cortex_fa_test_groups_")
        os.environ[GROUPS_ENV] = folder  # the workers are started after this and inherit it
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if getattr(config.option, "dist", "no") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FixtureGroupScheduling(LoadScopeScheduling):
        """loadscope with the workers' groups as scopes; every other test is a scope of its own."""

        groups = None

        def _split_scope(self, nodeid):
            if self.groups is None:
                self.groups = {}
                for path in Path(os.environ[GROUPS_ENV]).glob("*.json"):
                    self.groups.update(json.loads(path.read_text()))
            if nodeid.rfind("@") > nodeid.rfind("]"):  # pytest < 9: xdist tagged an xdist_group mark
                nodeid = nodeid.rsplit("@", 1)[0]
            return self.groups.get(nodeid, nodeid)

    return FixtureGroupScheduling(config, log)


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


def _group_of(item):
    mark = item.get_closest_marker("xdist_group")
    if mark is not None:
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    if item.get_closest_marker("spread") is None and _uses_own_shared_fixture(item):
        return item.module.__name__
    return None


def pytest_collection_modifyitems(config, items):
    """Group what must share a worker, and hand out the slow tests first.

    A file whose tests share an expensive fixture of its own (a batch of CLI
    runs, a built wheel, a trained study) stays on one worker, so the fixture
    is made once; a test marked ``spread`` opts out (its cases are long and the
    fixture is cheap next to them). Every other test is scheduled on its own.
    Slow tests go first so that no long test starts last and holds up the run.
    """
    groups = {item.nodeid: group for item in items if (group := _group_of(item)) is not None}
    slow_groups = {groups[item.nodeid] for item in items if item.nodeid in groups and item.get_closest_marker("slow")}

    def later(item) -> bool:
        # a grouped file moves as a whole: split, its module fixture would be torn down and made again
        if item.nodeid in groups:
            return groups[item.nodeid] not in slow_groups
        return item.get_closest_marker("slow") is None

    items.sort(key=later)  # stable: file order otherwise
    folder = os.environ.get(GROUPS_ENV)
    if hasattr(config, "workerinput") and folder:
        path = Path(folder) / f"{config.workerinput['workerid']}.json"
        path.with_suffix(".tmp").write_text(json.dumps(groups))
        path.with_suffix(".tmp").replace(path)  # whole or absent when the controller reads it
