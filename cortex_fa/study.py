"""Studies on disk: a sweep's run directory of ``<config hash>.nc`` files plus a manifest.

Combining runs into one study Dataset is :func:`combine_runs` (from
:mod:`cortex_fa.combine`, re-exported here); this module keeps the files a
sweep writes: the run directory, its ``sweep.json`` manifest, partial files
left by a killed writer, and run files that are damaged or foreign. Run files
are read through :func:`cortex_fa.results.open_file`, so they meet the same
schema checks and size limits as any shared file. See ``docs/schema.md``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import xarray as xr

from cortex_fa.combine import RUN_DIMS, combine_runs, swept_options
from cortex_fa.errors import ResultsError
from cortex_fa.results import open_file

__all__ = ["RUN_DIMS", "MANIFEST", "combine_runs", "swept_options", "default_run_dir", "check_run_dir",
           "write_manifest", "clean_temporaries", "run_file_ok", "load_runs"]

log = logging.getLogger(__name__)
MANIFEST = "sweep.json"


# -- a study on disk: a run dir of <config hash>.nc files plus a sweep.json manifest ----

def default_run_dir(out) -> Path:
    """``study.nc`` -> ``study.runs`` next to it."""
    out = Path(out)
    return out.with_name(out.stem + ".runs")


def check_run_dir(run_dir: Path, manifest: dict) -> None:
    """Refuse a run dir that belongs to another sweep (never mix runs of two sweeps)."""
    path = Path(run_dir) / MANIFEST
    if path.exists():
        try:
            other = json.loads(path.read_text())
        except (OSError, ValueError):
            raise ResultsError(f"{path} is not a readable sweep manifest; remove it or choose another --run-dir") from None
        if other.get("runs") != manifest["runs"]:  # the run set is the identity; the spec may be spelt differently
            raise ResultsError(
                f"run dir {run_dir} belongs to a different sweep ({_describe(other.get('spec', {}))}); "
                "use another --run-dir (or --out) or delete that directory"
            )
    elif Path(run_dir).is_dir() and any(Path(run_dir).glob("*.nc")):
        raise ResultsError(f"run dir {run_dir} holds .nc files but no {MANIFEST}; use another --run-dir")


def _describe(spec: dict) -> str:
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                    for k, v in spec.items() if k in ("rules", "depths", "seeds", "width"))


def write_manifest(run_dir: Path, manifest: dict) -> None:
    """Create the run dir and write ``sweep.json`` atomically (if not there yet)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / MANIFEST).exists():
        return
    tmp = run_dir / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
    os.replace(tmp, run_dir / MANIFEST)


def clean_temporaries(run_dir: Path) -> int:
    """Delete what a killed sweep left: ``save_results`` temporaries (of run files and of
    checkpoints) and the ``*.partial.nc`` files of runs that were in progress. Their
    ``<hash>.ckpt`` checkpoints stay: the runs continue from them."""
    run_dir = Path(run_dir)
    stale = [*run_dir.glob(".*.nc.*.tmp"), *run_dir.glob(".*.ckpt.*.tmp"), *run_dir.glob("*.partial.nc")]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def run_file_ok(path: Path, config_hash: str) -> bool:
    """True if ``path`` is a complete run file for ``config_hash``.

    A file that exists but is unreadable, breaks the schema or belongs to
    another config is renamed ``<name>.corrupt`` with a warning, so the run
    is computed again.
    """
    path = Path(path)
    if not path.exists():
        return False
    try:
        ds = open_file(path)  # schema and size limits: a run file is small, reading it all is cheap
        if ds.attrs.get("config_hash") != config_hash:
            raise ResultsError(f"{path} has config_hash {ds.attrs.get('config_hash')!r}, expected {config_hash}")
        return True
    except Exception as exc:  # noqa: BLE001 - junk of any kind: move it aside and recompute
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        log.warning("cortex-fa: warning: %s is not a valid run file (%s); moved it to %s and computing it again",
                    path, str(exc).splitlines()[0][:120], aside.name)
        return False


def load_runs(paths, *, limits=None) -> list[xr.Dataset]:
    """Open run files (fully loaded, files closed again), each checked by :func:`cortex_fa.results.open_file`."""
    return [open_file(Path(path), limits=limits) for path in paths]
