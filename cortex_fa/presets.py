"""Reference presets: TOML files that reproduce published results.

The presets live in ``models/`` at the top of the repository; the wheel and
the sdist carry the same files as the package data ``cortex_fa/_models/``
(pyproject maps the one onto the other), read through :mod:`importlib.resources`.
``$CORTEX_FA_MODELS_DIR`` names a folder of more presets; one there with a
packaged preset's name overrides it (:func:`discover` notes which).

A preset file has the tables of a sweep config (``[run]`` fixed options,
``[sweep]`` rules/depths/width/seeds, optional ``[grid]``) plus

* ``[preset]``: ``title`` and ``description``;
* ``[quick]``: overrides for ``--quick`` (sweep keys or run options);
* ``[published]``: ``source``, ``metric`` ("selected": test error at the
  best-validation epoch, or "final"), ``depth``
  (the network depth the numbers refer to), ``notes``, ``kind``
  ("publication", the default, or "peer measurement": numbers measured on
  other software, never counted as a reproduced paper), a
  ``[published.test_error]`` table of percent test error per rule and an
  optional ``[published.spread]`` table (the paper's own spread, percentage
  points, which becomes that rule's equivalence margin);
* ``[protocol]``: a protocol declared before the run (reference rule, the
  grid and seeds that choose each rule's rate per depth, the exclusion
  rule, the margin); run by ``cortex-fa protocol``, see :mod:`cortex_fa.protocol`.

Example::

    from cortex_fa import presets
    p = presets.load("lillicrap2016")
    spec = p.spec(quick=True)          # a SweepSpec
"""

from __future__ import annotations

import importlib.resources
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from cortex_fa import reproduction
from cortex_fa.config import load_toml
from cortex_fa.errors import ConfigError, did_you_mean

_SWEEP_KEYS = ("rules", "depths", "seeds", "width")
_TABLES = ("preset", "run", "sweep", "grid", "quick", "published", "protocol")
ENV = "CORTEX_FA_MODELS_DIR"
PACKAGE = "cortex_fa._models"  # models/ as package data (see [tool.setuptools.package-dir])


def packaged_dir():
    """The packaged presets' folder (a Traversable), or None if there is none.

    Installed (wheel or editable), that is the package data ``cortex_fa._models``;
    a checkout that is only on ``sys.path`` falls back to its ``models/``.
    """
    try:
        return importlib.resources.files(PACKAGE)
    except ModuleNotFoundError:
        source = Path(__file__).resolve().parent.parent / "models"
        return source if source.is_dir() else None


def user_dir() -> Path | None:
    """``$CORTEX_FA_MODELS_DIR`` if set; a missing folder is an error, not an empty one."""
    env = os.environ.get(ENV)
    if not env:
        return None
    folder = Path(env).expanduser()
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise ConfigError(f"{ENV}={env}: {what}; set it to a folder of preset .toml files or unset it")
    return folder


def models_dir() -> Path:
    """The folder presets are looked up in first: ``$CORTEX_FA_MODELS_DIR``, else the packaged one."""
    return user_dir() or Path(str(packaged_dir() or Path(__file__).resolve().parent.parent / "models"))


# Errors a preset may compare with a paper; the test-set minimum is never one of them.
PUBLISHED_METRICS = ("selected", "final")
@dataclass(frozen=True)
class Catalog:
    """What :func:`discover` found: preset name -> file, the notes to show, where it looked."""

    files: dict
    notes: tuple[str, ...]
    searched: tuple[str, ...]


def _tomls(folder) -> dict:
    return {entry.name[:-5]: entry for entry in folder.iterdir()
            if entry.name.endswith(".toml") and entry.is_file()}


def discover() -> Catalog:
    """The packaged presets, overridden or added to by those in ``$CORTEX_FA_MODELS_DIR``.

    Raises
    ------
    ConfigError
        ``$CORTEX_FA_MODELS_DIR`` is set but is not a folder.
    """
    packaged, user = packaged_dir(), user_dir()
    files = _tomls(packaged) if packaged is not None else {}
    searched = [str(packaged) if packaged is not None else f"{PACKAGE} (not installed)"]
    notes = []
    if user is not None:
        searched.insert(0, str(user))
        for name, path in sorted(_tomls(user).items()):
            if name in files:
                notes.append(f"preset {name}: {path} shadows the packaged {files[name]}")
            files[name] = path
    return Catalog(dict(sorted(files.items())), tuple(notes), tuple(searched))


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
    protocol: dict = field(default_factory=dict)

    def spec(self, quick: bool = False):
        """The :class:`~cortex_fa.sweep.SweepSpec` of the full (or ``--quick``) run."""
        from cortex_fa.spec import SweepSpec

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
            ``rule``, ``published``, ``mean``, ``lo``, ``hi``, ``n``,
            ``shortfall`` (measured minus published, percentage points; positive
            means our error is higher), ``margin`` (the paper's spread or
            :data:`cortex_fa.reproduction.DEFAULT_MARGIN`), ``kind``, ``verdict``
            (:func:`cortex_fa.reproduction.verdict`) and ``reproduced`` (the
            verdict is "reproduced").
        """
        from cortex_fa import analysis

        metric = self.published.get("metric", "selected")
        depth = int(self.published.get("depth", min(study["n_hidden"].values)))
        summary = analysis.error_summary(study)
        extra = [d for d in summary.dims if d not in ("rule", "n_hidden")]
        if extra:
            summary = summary.isel({d: 0 for d in extra})
        rows = []
        for rule, value in self.published_errors.items():
            row = {"rule": rule, "published": float(value), "depth": depth, "metric": metric}
            if rule in summary["rule"].values and depth in summary["n_hidden"].values:
                cell = summary.sel(rule=rule, n_hidden=depth)
                row.update({k: float(cell[f"{metric}_{k}"]) for k in ("mean", "lo", "hi")}, n=int(cell["n"]))
            else:
                row.update(mean=float("nan"), lo=float("nan"), hi=float("nan"), n=0)
            row["shortfall"] = row["mean"] - row["published"]
            spread = self.published.get("spread", {}).get(rule)
            row["published_spread"] = float("nan") if spread is None else float(spread)
            row["margin"] = reproduction.DEFAULT_MARGIN if spread is None else float(spread)
            row["kind"] = self.published.get("kind", reproduction.PUBLICATION)
            row["verdict"] = reproduction.verdict(row["published"], row["lo"], row["hi"], row["margin"])
            row["reproduced"] = row["verdict"] == reproduction.REPRODUCED
            rows.append(row)
        return rows


def available() -> tuple[str, ...]:
    """Names of the presets :func:`discover` finds."""
    return tuple(discover().files)


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
        catalog = discover()
        if name not in catalog.files:
            names = tuple(catalog.files)
            raise ConfigError(f"unknown preset '{name}'{did_you_mean(name, names)}; "
                              f"available: {', '.join(names) or 'none (no .toml files in ' + ' or '.join(catalog.searched) + ')'}")
        path = catalog.files[name]
    if isinstance(path, Path):
        table = load_toml(path)
    else:  # packaged inside a zip: a real file only for the read
        with importlib.resources.as_file(path) as real:
            table = load_toml(real)
    unknown = set(table) - set(_TABLES)
    if unknown:
        raise ConfigError(f"preset {path.name}: unknown table(s) {', '.join(sorted(unknown))}; valid: {', '.join(_TABLES)}")
    meta = table.get("preset", {})
    stem = path.name[:-5] if path.name.endswith(".toml") else path.name
    preset = Preset(name=stem, path=path, title=meta.get("title", stem), description=meta.get("description", ""),
                    run=table.get("run", {}), sweep=table.get("sweep", {}), grid=table.get("grid", {}),
                    quick=table.get("quick", {}), published=table.get("published", {}),
                    protocol=table.get("protocol", {}))
    for quick in (False, True):
        try:
            preset.spec(quick)
        except ConfigError as exc:
            raise ConfigError(f"preset {path.name}{' [quick]' if quick else ''}: {exc}") from None
    metric = preset.published.get("metric", "selected")
    if metric not in PUBLISHED_METRICS:
        raise ConfigError(f"preset {path.name}: published.metric must be 'selected' or 'final' (errors chosen on "
                          f"the test set are never compared), got {metric!r}")
    _check_published_errors(path.name, preset.published.get("test_error", {}))
    kind = preset.published.get("kind", reproduction.PUBLICATION)
    if kind not in reproduction.KINDS:
        raise ConfigError(f"preset {path.name}: published.kind must be one of "
                          f"{', '.join(map(repr, reproduction.KINDS))}, got {kind!r}")
    spread = preset.published.get("spread", {})
    if not isinstance(spread, dict) or not all(_positive_number(v) for v in spread.values()):
        raise ConfigError(f"preset {path.name}: published.spread must be a table of rule = percentage points "
                          f"> 0 (the paper's own spread), got {spread!r}")
    if "protocol" in table:
        from cortex_fa.protocol import check_protocol

        check_protocol(preset)
    return preset


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_number(value) -> bool:
    return _finite_number(value) and value > 0


def _check_published_errors(name: str, errors) -> None:
    """Published errors must be percentages now, not when Preset.compare meets them after the sweep."""
    if not isinstance(errors, dict):
        raise ConfigError(f"preset {name}: published.test_error must be a table of rule = percent, got {errors!r}")
    for rule, value in errors.items():
        if not _finite_number(value) or not 0 <= value <= 100:
            raise ConfigError(f"preset {name}: published.test_error.{rule} must be a percent test error "
                              f"in [0, 100], got {value!r}")
