"""The suite's own scheduling (tests/conftest.py): a file's shared fixture is made once.

Run as scripts/test.sh runs the suite (two pytest-xdist workers, ``--dist
loadgroup``) on a small suite of its own, with this repository's conftest.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist")

SHARED = '''
import os
import pytest

@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    marker = tmp_path_factory.getbasetemp().parent / "made"
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\\n")
    return os.getpid()

@pytest.mark.slow
@pytest.mark.parametrize("i", range(6))
def test_reads_shared(i, shared):
    assert shared == os.getpid()

def test_alone():
    pass
'''
SINGLE = '''
import pytest

@pytest.mark.parametrize("i", range(6))
def test_single(i):
    pass
'''


def test_tests_sharing_a_module_fixture_run_on_one_worker_and_make_it_once(tmp_path):
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "tests").mkdir()
    shutil.copy(root / "tests" / "conftest.py", tmp_path / "tests" / "conftest.py")
    shutil.copy(root / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "tests" / "test_shared.py").write_text(SHARED)
    (tmp_path / "tests" / "test_single.py").write_text(SINGLE)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p",
                           "no:cacheprovider", "--basetemp", str(tmp_path / "base"), "tests"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    workers = {}
    for worker, nodeid in re.findall(r"^\[(gw\d)\] \[\s*\d+%\] PASSED (\S+)", proc.stdout, re.M):
        workers.setdefault(nodeid.split("::")[1].split("[")[0], set()).add(worker)
    assert len(workers["test_reads_shared"]) == 1, workers  # one group, one worker
    assert len(workers["test_single"]) >= 1 and len(workers) == 3, workers
    made = (tmp_path / "base" / "made").read_text().split()
    assert len(made) == 1, f"the module fixture was made {len(made)} times"
