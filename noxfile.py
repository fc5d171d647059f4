"""The core and Dask tests on Python 3.11, 3.12 and 3.13, one nox session each.

::

    nox                    # all three (minutes each: a fresh venv, then the tests)
    nox -s tests-3.13      # one Python
    nox -s tests-3.12 -- tests/test_presets.py    # other tests than the default ones

Each session installs the package itself (a wheel built from this checkout,
not an editable install) with the ``dask`` extra into its own environment
under ``.nox/``, and runs :data:`CORE_TESTS` against it; the whole suite
stays on 3.11 in CI (``scripts/test.sh``). The Dask sweep test trains on the
real MNIST from the cache that ``cortex-fa data fetch`` fills.

Interpreters are looked up on ``PATH`` after pyenv's own folders
(``$PYENV_ROOT/versions/3.X.Y/bin``), so the Pythons that pyenv installed
are found whichever one ``pyenv global`` selects; a missing one is an error
naming it (``pyenv install 3.13`` adds it), never a silent skip.
"""

from __future__ import annotations

import glob
import os

import nox

PYTHONS = ("3.11", "3.12", "3.13")

# Fast tests of the numerical core, the presets and the packaging, and a real
# sweep on a local Dask cluster (with the refusal of an unreachable scheduler).
CORE_TESTS = (
    "tests/test_config_properties.py",
    "tests/test_training.py",
    "tests/test_rules.py",
    "tests/test_presets.py",
    "tests/test_sweep.py",
    "tests/test_sweep_dask.py::test_local_cluster_sweep",
    "tests/test_sweep_dask.py::test_unreachable_scheduler_fails_fast_and_writes_nothing",
    "-m", "not slow",
)
# The test extra less playwright (the browser tests are not run here).
TEST_DEPS = ("pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100")

nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = True
nox.options.download_python = "never"  # the machine's own interpreters only


def _pyenv_bins() -> list[str]:
    """``bin`` folders of pyenv's Pythons 3.11-3.13, newest patch release first."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = glob.glob(os.path.join(root, "versions", "3.1[1-3].*", "bin"))
    return sorted(found, key=lambda p: [int(x) if x.isdigit() else 0
                                        for x in os.path.basename(os.path.dirname(p)).split(".")], reverse=True)


os.environ["PATH"] = os.pathsep.join([*_pyenv_bins(), os.environ.get("PATH", "")])


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Install cortex_fa[dask] and run the core and Dask tests (or the tests given after ``--``)."""
    session.install(".[dask]", *TEST_DEPS)
    # -I: not the checkout on sys.path, so this shows the installed package.
    session.run("python", "-I", "-c", "import sys, cortex_fa; print(sys.version.split()[0], cortex_fa.__file__)")
    # pytest's own script, not `python -m pytest`: that would put the checkout on
    # sys.path and test the source tree instead of the installed package.
    session.run("pytest", "-p", "no:cacheprovider", *(session.posargs or CORE_TESTS))
