"""Helpers that several sub-commands share, one floor below them.

Sub-command modules import from here, never from each other for such helpers,
so that ``sweep`` may use ``report`` (its summary table) without ``report``
importing ``sweep`` back.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cortex_fa.errors import CortexFAError


def check_dir_writable(directory: Path, what: str) -> None:
    """Refuse, before any work, a directory in which no file can be created.

    Tries to create (and delete) a file there: os.access says yes to root on any directory,
    even a read-only mount or /proc.

    Parameters
    ----------
    directory : pathlib.Path
        The directory to probe (``""`` means the working directory).
    what : str
        What the directory is for, as the start of the error message (e.g. ``"--out study.nc"``).

    Raises
    ------
    CortexFAError
        One line naming ``what``, the directory and the reason.
    """
    directory = Path(directory) if str(directory) else Path(".")
    try:
        fd, probe = tempfile.mkstemp(prefix=".cortex_fa-probe.", suffix=".tmp", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CortexFAError(f"{what}: cannot write in directory {directory} ({exc.strerror or exc})") from None
