"""Typed errors. Every user-facing failure is a :class:`CortexFAError`.

The CLI prints ``cortex-fa: error: <message>`` on one line and exits with
status 2 for any of these; the Python API lets them propagate.
"""

from __future__ import annotations

import difflib


class CortexFAError(Exception):
    """Base class of errors caused by the user's input, data or environment."""


class ConfigError(CortexFAError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


class DataError(CortexFAError):
    """A data file is missing, truncated, corrupted or cannot be fetched."""


class ResultsError(CortexFAError, ValueError):
    """A results file is not a cortex_fa NetCDF file or breaks the schema."""


class BackendUnavailable(CortexFAError, ImportError):
    """An optional backend's dependencies are not installed."""


def did_you_mean(word: str, choices) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def choices_text(choices) -> str:
    """Format valid choices for an error message: ``one of a, b, c``."""
    return "one of " + ", ".join(str(c) for c in choices)
