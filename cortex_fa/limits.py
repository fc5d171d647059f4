"""Size limits for results files, checked before anything is loaded.

A NetCDF-4 file is compressed: a file of a few megabytes can declare
variables of gigabytes that decompress on reading (a decompression bomb).
Results files travel between people, so every reader checks what a file
*declares* (dimension sizes, variable shapes, from the metadata alone) against
:class:`Limits` first, and refuses a file beyond them with one line. The same
limits bound what combining many small run files may allocate.

Defaults are far above real studies (a depth study logs tens of steps for
about ten layers); each can be raised with a keyword (``limits=``) or an
environment variable (``CORTEX_FA_MAX_STEPS`` ...), the keyword winning.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import numpy as np

from cortex_fa.cf import RUN_INTERNAL_DIMS
from cortex_fa.errors import ResultsError, did_you_mean

ENV = {"steps": "CORTEX_FA_MAX_STEPS", "layers": "CORTEX_FA_MAX_LAYERS", "runs": "CORTEX_FA_MAX_RUNS",
       "bytes": "CORTEX_FA_MAX_BYTES", "variables": "CORTEX_FA_MAX_VARIABLES"}
_WHAT = {"steps": "logged steps", "layers": "layers", "runs": "runs", "bytes": "decompressed bytes",
         "variables": "variables"}
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_VLEN_BYTES = 16  # a variable-length string counts as its heap reference; its text is not compressed
STRING_DIM = re.compile(r"^string\d+$")  # xarray's character dimension of fixed-width strings


@dataclasses.dataclass(frozen=True)
class Limits:
    """Largest sizes a results file (or a combination of run files) may declare.

    Attributes
    ----------
    steps : int
        Length of the ``step`` dimension.
    layers : int
        Length of the ``layer`` dimension.
    runs : int
        Product of the run dimensions (``rule`` x ``n_hidden`` x ``seed`` x swept options;
        not the dims inside a run such as the synapse snapshots' ``pair``).
    bytes : int
        Total size of all variables once decompressed.
    variables : int
        Number of variables in one file.
    """

    steps: int = 100_000
    layers: int = 1_000
    runs: int = 100_000
    bytes: int = 2**30
    variables: int = 1_000

    @classmethod
    def resolve(cls, given=None, environ=None) -> Limits:
        """Defaults, overridden by environment variables, overridden by ``given``.

        Parameters
        ----------
        given : Limits, mapping or None
            A :class:`Limits`, or a mapping of some fields (``{"steps": 10**6}``).
        environ : mapping, optional
            Defaults to :data:`os.environ`.
        """
        if isinstance(given, Limits):
            return given
        environ = os.environ if environ is None else environ
        values = {f: _parse(environ[var], var) for f, var in ENV.items() if environ.get(var, "").strip()}
        for key, value in dict(given or {}).items():
            if key not in ENV:
                raise ResultsError(f"unknown results limit {key!r}{did_you_mean(key, ENV)}; "
                                   f"limits are {', '.join(ENV)}")
            values[key] = _parse(value, f"limits[{key!r}]")
        return cls(**values)


def _parse(value, where: str) -> int:
    """A positive integer; text may use ``_`` and a binary suffix (``4G``, ``512MiB``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = re.fullmatch(r"\s*(\d[\d_]*)\s*([kmgt]?)(i?b)?\s*", str(value), re.I)
    if not m or int(m[1].replace("_", "")) <= 0:
        raise ResultsError(f"{where} = {value!r} is not a positive integer (e.g. 100000, or 4G for bytes)")
    return int(m[1].replace("_", "")) * _UNITS[m[2].lower()]


def check_sizes(source, limits: Limits, *, steps=0, layers=0, runs=1, nbytes=0, variables=0,
                verb: str = "declares") -> None:
    """Raise :class:`ResultsError` naming the first size beyond ``limits``.

    The message reads ``<source> <verb> <value> <what>, more than the limit ...``
    and names the environment variable and keyword that raise the limit.
    """
    for field, value in (("variables", variables), ("steps", steps), ("layers", layers), ("runs", runs),
                         ("bytes", nbytes)):
        limit = getattr(limits, field)
        if value > limit:
            raise ResultsError(
                f"{source} {verb} {value:,} {_WHAT[field]}, more than the limit of {limit:,}; refused unread "
                f"(a shared results file may be a decompression bomb); if it is genuine, raise the limit with "
                f"{ENV[field]}={value} or limits={{'{field}': {value}}}")


def check_file(path, limits: Limits | None = None) -> None:
    """Check what the NetCDF file at ``path`` declares, reading its metadata only.

    Raises
    ------
    ResultsError
        The file is not readable NetCDF, or declares more than ``limits`` allow.
    """
    import netCDF4

    limits = Limits.resolve(limits)
    try:
        with netCDF4.Dataset(path, "r") as nc:
            sizes = {name: len(dim) for name, dim in nc.dimensions.items()}
            shapes = [(v.dimensions, _itemsize(v)) for v in nc.variables.values()]
    except Exception as exc:  # netCDF4 raises OSError/ValueError/RuntimeError on junk
        raise ResultsError(f"{path} is not a readable NetCDF file ({type(exc).__name__}: {str(exc)[:120]})") from None
    run_dims = [d for d in sizes if d not in RUN_INTERNAL_DIMS and not STRING_DIM.match(d)]
    nbytes = sum(math.prod(sizes[d] for d in dims) * itemsize for dims, itemsize in shapes)
    check_sizes(path, limits, steps=sizes.get("step", 0), layers=sizes.get("layer", 0),
                runs=math.prod(sizes[d] for d in run_dims), nbytes=nbytes, variables=len(shapes))


def _itemsize(var) -> int:
    dtype = var.dtype  # a numpy dtype, or str / a netCDF4 type for variable-length data
    return dtype.itemsize if isinstance(dtype, np.dtype) else _VLEN_BYTES
