"""Reference presets: TOML files in ``models/`` that reproduce published results.

A preset file has the tables of a sweep config (``[run]`` fixed options,
``[sweep]`` rules/depths/width/seeds, optional ``[grid]``) plus

* ``[preset]``: ``title`` and ``description``;
* ``[quick]``: overrides for ``--quick`` (sweep keys or run options);
* ``[published]``: ``source``, ``metric`` ("final" or "best"), ``depth``
  (the network depth the numbers refer to), ``notes`` and a
  ``[published.test_error]`` table of percent test error per rule.

Example::

    from cortex_fa import presets
    p = presets.load("lillicrap2016")
    spec = p.spec(quick=True)          # a SweepSpec
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from cortex_fa.config import load_toml
from cortex_fa.errors import ConfigError, did_you_mean

_SWEEP_KEYS = ("rules", "depths", "seeds", "width")
_TABLES = ("preset", "run", "sweep", "grid", "quick", "published")


def models_dir() -> Path:
    """``$CORTEX_FA_MODELS_DIR`` if set, else the ``models/`` folder of the source tree."""
    env = os.environ.get("CORTEX_FA_MODELS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models"


@dataclass(frozen=True)
class Preset:
    """One reference experiment (see the module docstring for the file layout)."""

    name: str
    path: Path
    title: str = ""
    description: str = ""
    run: dict = field(default_factory=dict)
    sweep: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    quick: dict = field(default_factory=dict)
    published: dict = field(default_factory=dict)

    def spec(self, quick: bool = False):
        """The :class:`~cortex_fa.sweep.SweepSpec` of the full (or ``--quick``) run."""
        from cortex_fa.sweep import SweepSpec

        sweep, run = dict(self.sweep), dict(self.run)
        if quick:
            for key, value in self.quick.items():
                (sweep if key in _SWEEP_KEYS else run)[key] = value
        return SweepSpec.from_table({**sweep, "grid": dict(self.grid)}, run)

    @property
    def published_errors(self) -> dict:
        return dict(self.published.get("test_error", {}))

    def compare(self, study):
        """Published vs measured test error (percent) per rule at the published depth.

        Returns
        -------
        list of dict
            ``rule``, ``published``, ``mean``, ``lo``, ``hi``, ``n`` and
            ``shortfall`` (measured minus published, percentage points; positive
            means our error is higher).
        """
        from cortex_fa import analysis

        metric = self.published.get("metric", "final")
        depth = int(self.published.get("depth", min(study["depth"].values)))
        summary = analysis.error_summary(study)
        extra = [d for d in summary.dims if d not in ("rule", "depth")]
        if extra:
            summary = summary.isel({d: 0 for d in extra})
        rows = []
        for rule, value in self.published_errors.items():
            row = {"rule": rule, "published": float(value), "depth": depth, "metric": metric}
            if rule in summary["rule"].values and depth in summary["depth"].values:
                cell = summary.sel(rule=rule, depth=depth)
                row.update({k: float(cell[f"{metric}_{k}"]) for k in ("mean", "lo", "hi")}, n=int(cell["n"]))
            else:
                row.update(mean=float("nan"), lo=float("nan"), hi=float("nan"), n=0)
            row["shortfall"] = row["mean"] - row["published"]
            rows.append(row)
        return rows


def available() -> tuple[str, ...]:
    """Names of the preset files in :func:`models_dir`."""
    folder = models_dir()
    return tuple(sorted(p.stem for p in folder.glob("*.toml"))) if folder.is_dir() else ()


def load(name: str) -> Preset:
    """Load and validate a preset by name (or by path to a ``.toml`` file).

    Raises
    ------
    ConfigError
        Unknown name (listing the valid ones), unknown tables, or any run of
        the full or quick sweep that does not validate.
    """
    path = Path(name)
    if path.suffix != ".toml":
        names = available()
        if name not in names:
            raise ConfigError(f"unknown preset '{name}'{did_you_mean(name, names)}; "
                              f"available: {', '.join(names) or f'none (no .toml files in {models_dir()})'}")
        path = models_dir() / f"{name}.toml"
    table = load_toml(path)
    unknown = set(table) - set(_TABLES)
    if unknown:
        raise ConfigError(f"preset {path.name}: unknown table(s) {', '.join(sorted(unknown))}; valid: {', '.join(_TABLES)}")
    meta = table.get("preset", {})
    preset = Preset(name=path.stem, path=path, title=meta.get("title", path.stem), description=meta.get("description", ""),
                    run=table.get("run", {}), sweep=table.get("sweep", {}), grid=table.get("grid", {}),
                    quick=table.get("quick", {}), published=table.get("published", {}))
    for quick in (False, True):
        try:
            preset.spec(quick)
        except ConfigError as exc:
            raise ConfigError(f"preset {path.name}{' [quick]' if quick else ''}: {exc}") from None
    metric = preset.published.get("metric", "final")
    if metric not in ("final", "best"):
        raise ConfigError(f"preset {path.name}: published.metric must be 'final' or 'best', got {metric!r}")
    _check_published_errors(path.name, preset.published.get("test_error", {}))
    return preset


def _check_published_errors(name: str, errors) -> None:
    """Published errors must be percentages now, not when Preset.compare meets them after the sweep."""
    if not isinstance(errors, dict):
        raise ConfigError(f"preset {name}: published.test_error must be a table of rule = percent, got {errors!r}")
    for rule, value in errors.items():
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or not 0 <= value <= 100:
            raise ConfigError(f"preset {name}: published.test_error.{rule} must be a percent test error "
                              f"in [0, 100], got {value!r}")
