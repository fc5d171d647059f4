"""What a sweep runs: :class:`SweepSpec`, rules x depths x seeds x swept options.

Pure description, validated on construction (every cell becomes a
:class:`~cortex_fa.config.RunConfig` here, so a bad cell fails before any
cluster starts); :mod:`cortex_fa.sweep` executes it.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

from cortex_fa.config import DEFAULT_MAX_PARAMETERS, RunConfig
from cortex_fa.errors import ConfigError, did_you_mean

_PER_RUN = ("rule", "hidden", "seed", "label")  # set by the sweep itself, never fixed or gridded
_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
# Far beyond any trainable depth; only there so a typo like 10000000000 cannot allocate
# a (width,) * depth tuple of that length.
MAX_DEPTH = 10_000


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs: ``rules x depths x seeds x grid`` at one width.

    Parameters
    ----------
    rules, depths, seeds : tuple
        Learning rules, numbers of hidden columns and seeds.
    width : int
        Units per hidden column (every column has the same width).
    base : dict
        Fixed run options shared by every run (``{"epochs": 5, ...}``).
    grid : dict
        Swept run options: name -> tuple of values (``{"lr": (0.01, 0.05)}``).
    per_rule : dict
        Run options of one rule only, over ``base``: rule -> options
        (``{"fa": {"lr": 0.1}, "kp": {"rule_params": {"decay": 1e-3}}}``), so
        that each rule trains at its own learning rate. In a TOML file:
        ``[sweep.per_rule.fa]``. An entry whose name is not a rule but which
        sets ``rule`` is a **variant** of that rule, named in ``rules`` like
        a rule (``{"bp_wd": {"rule": "bp", "weight_decay": 1e-3}}``): its
        runs carry the name as their ``label``, the study's ``rule``
        coordinate.
    per_cell : dict
        Run options of one rule (or variant) at one depth, over ``per_rule``:
        ``"rule@depth"`` -> options (``{"fa@7": {"lr": 0.1}}``: learning
        rates chosen per rule and depth). In a TOML file:
        ``[sweep.per_cell."fa@7"]``. Like ``per_rule`` options they belong
        to the cell, not to a dimension of the study.
    """

    rules: tuple
    depths: tuple
    seeds: tuple
    width: int = 500
    base: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    per_rule: dict = field(default_factory=dict)
    per_cell: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("rules", "depths", "seeds"):
            if not getattr(self, name):
                raise ConfigError(f"the sweep needs at least one value in {name}")
        for name in set(self.base) & set(_PER_RUN):
            raise ConfigError(f"'{name}' is set per run by the sweep; use rules, depths + width and seeds instead")
        from cortex_fa import rules as _rules

        known = _rules.available()
        for rule, options in self.per_rule.items():
            if not isinstance(options, dict):
                raise ConfigError(f"per_rule.{rule} must be a table of run options, got {options!r}")
            variant = "rule" in options
            if variant and rule in known:
                raise ConfigError(f"per_rule.{rule} sets rule = {options['rule']!r}, but {rule} is a rule itself; "
                                  f"name the variant, e.g. [sweep.per_rule.{options['rule']}_variant]")
            if variant and options["rule"] not in known:
                raise ConfigError(f"per_rule.{rule}: rule {options['rule']!r} is not known"
                                  f"{did_you_mean(str(options['rule']), known)}")
            if not variant and rule not in known:  # a rule left out of this sweep (e.g. by --quick) may keep its entry
                raise ConfigError(f"per_rule options for unknown rule '{rule}'{did_you_mean(rule, known)}; "
                                  f"a variant of a rule names it: rule = \"bp\"")
            self._check_options(f"per_rule.{rule}", options, allowed=("rule",) if variant else ())
        for key, options in self.per_cell.items():
            name, at, depth = str(key).partition("@")
            if not at or not name or not depth.isdigit():
                raise ConfigError(f"per_cell key {key!r} must be RULE@DEPTH, e.g. \"fa@3\"")
            if name not in known and name not in self.per_rule:
                raise ConfigError(f"per_cell.{key}: '{name}' is neither a rule nor a variant of per_rule"
                                  f"{did_you_mean(name, [*known, *self.per_rule])}")
            if not isinstance(options, dict):
                raise ConfigError(f"per_cell.{key} must be a table of run options, got {options!r}")
            self._check_options(f"per_cell.{key}", options)
        for name, values in self.grid.items():
            if name in _PER_RUN:
                raise ConfigError(f"cannot --grid '{name}': use --{'depths/--width' if name == 'hidden' else name + 's'}")
            if not values:
                raise ConfigError(f"grid '{name}' has no values")
        for name, values in (("rules", self.rules), ("depths", self.depths), ("seeds", self.seeds), *self.grid.items()):
            if len({repr(v) for v in values}) < len(values):
                raise ConfigError(f"{name} lists a value twice: {', '.join(map(str, values))}")
        self.configs()  # validate every cell now, not on a worker

    def _check_options(self, where: str, options: dict, allowed=()) -> None:
        for name in options:
            if name in allowed:
                continue
            if name in _PER_RUN:
                raise ConfigError(f"{where}: '{name}' is not a run option that can be set per rule or cell "
                                  "(the sweep sets it per run)"
                                  + ("; a variant is a per_rule entry of its own name" if name == "label" else ""))
            if name not in _FIELDS:
                raise ConfigError(f"{where}: '{name}' is not a run option{did_you_mean(name, list(_FIELDS))}")
            if name in self.grid:
                raise ConfigError(f"{where}.{name} is also swept by the grid; set it in one place")

    def cell_options(self, rule: str, depth: int) -> dict:
        """The options of rule (or variant) ``rule`` at ``depth`` over ``base``: per_rule, then per_cell."""
        options = {**self.per_rule.get(rule, {}), **self.per_cell.get(f"{rule}@{depth}", {})}
        name = options.pop("rule", rule)
        return {**options, "rule": name, **({"label": rule} if name != rule else {})}

    def configs(self) -> list[RunConfig]:
        """Every run of the sweep, validated (ConfigError names the failing cell)."""
        out, names = [], list(self.grid)
        for rule, depth, seed, *values in itertools.product(self.rules, self.depths, self.seeds, *self.grid.values()):
            own = self.cell_options(rule, depth)
            cell = {**self.base, **{k: v for k, v in own.items() if k not in ("rule", "label")},
                    **dict(zip(names, values)), "seed": seed, "rule": own["rule"]}
            if "label" in own:
                cell["label"] = own["label"]
            try:
                _check_size(self.width, depth, cell.get("max_parameters", DEFAULT_MAX_PARAMETERS))
                out.append(RunConfig.from_dict({**cell, "hidden": (self.width,) * depth}))
            except ConfigError as exc:
                # repr for text with a newline or other control character: the error stays one line
                where = " ".join(f"{k}={v!r}" if isinstance(v, str) and not v.isprintable() else f"{k}={v}"
                                 for k, v in (("rule", rule), ("depth", depth), *zip(names, values)))
                raise ConfigError(f"sweep cell {where}: {exc}") from None
        return out

    def coords(self) -> dict:
        """Coordinate values for :func:`cortex_fa.study.combine_runs`, in the order given."""
        grid = {k: list(v) for k, v in self.grid.items() if len(v) > 1}
        return {"rule": list(self.rules), "n_hidden": list(self.depths), "seed": list(self.seeds), **grid}

    def to_dict(self) -> dict:
        out = {"rules": list(self.rules), "depths": list(self.depths), "seeds": list(self.seeds),
               "width": self.width, "base": dict(self.base), "grid": {k: list(v) for k, v in self.grid.items()}}
        used = {r: dict(o) for r, o in self.per_rule.items() if r in self.rules}
        if used:  # absent when unused, so a 0.2 sweep's manifest still matches
            out["per_rule"] = used
        cells = {k: dict(o) for k, o in self.per_cell.items()
                 if k.partition("@")[0] in self.rules and int(k.partition("@")[2]) in self.depths}
        if cells:
            out["per_cell"] = cells
        return out

    @classmethod
    def from_table(cls, table: dict, base: dict | None = None) -> "SweepSpec":
        """Build from a ``[sweep]``-style mapping of typed values (a TOML table) plus fixed options.

        Text from the command line is parsed first by :mod:`cortex_fa.cli.sweep`.
        """
        unknown = set(table) - {"rules", "depths", "seeds", "width", "grid", "per_rule", "per_cell"}
        if unknown:
            raise ConfigError(f"unknown sweep key(s) {', '.join(sorted(unknown))}; "
                              "valid: rules, depths, seeds, width, grid, per_rule, per_cell")
        per_rule = table.get("per_rule") or {}
        if not isinstance(per_rule, dict):
            raise ConfigError(f"per_rule must be a table of rule -> run options, got {per_rule!r}")
        per_cell = table.get("per_cell") or {}
        if not isinstance(per_cell, dict):
            raise ConfigError(f"per_cell must be a table of \"rule@depth\" -> run options, got {per_cell!r}")
        if "rules" not in table:
            raise ConfigError("the sweep needs rules, e.g. --rules bp,fa")
        grid = {}
        if not isinstance(table.get("grid") or {}, dict):
            raise ConfigError(f"grid must be a table of NAME = [values], got {table['grid']!r}")
        for name, values in (table.get("grid") or {}).items():
            if name not in _FIELDS:
                raise ConfigError(f"cannot sweep unknown run option '{name}'{did_you_mean(name, list(_FIELDS))}")
            grid[name] = tuple(values) if isinstance(values, (list, tuple)) else (values,)
        return cls(rules=tuple(parse_list(table["rules"], "rules", str)),
                   depths=tuple(parse_list(table.get("depths", [1]), "depths", int)),
                   seeds=tuple(parse_list(table.get("seeds", [0]), "seeds", int)),
                   width=int(parse_list(table.get("width", 500), "width", int)[0]),
                   base=dict(base or {}), grid=grid, per_rule=dict(per_rule), per_cell=dict(per_cell))


def parse_list(value, name: str, kind) -> list:
    """``3``, ``[1, 2]`` or ``"1,2"`` -> list of ``kind``; ConfigError if empty or malformed."""
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]
    items = [v.strip() if isinstance(v, str) else v for v in items]
    items = [v for v in items if v != ""]
    if not items:
        raise ConfigError(f"{name} is empty; give at least one value")
    try:
        if any(isinstance(v, bool) for v in items):
            raise ValueError
        # int(2.7) would silently truncate: only whole numbers count as ints
        if kind is int and any(isinstance(v, float) and not v.is_integer() for v in items):
            raise ValueError
        out = [kind(v) for v in items]
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name} must be a comma-separated list of {kind.__name__} values, got {value!r}") from None
    if kind is int and any(v < 0 for v in out):
        raise ConfigError(f"{name} must be non-negative integers, got {value!r}")
    return out


def _check_size(width, depth, limit) -> None:
    """Refuse a too-big network before ``(width,) * depth`` is built (a huge depth would exhaust memory)."""
    if not (isinstance(width, int) and isinstance(depth, int) and width > 0 and depth > 0):
        return  # RunConfig.from_dict gives the precise error
    if isinstance(limit, int) and not isinstance(limit, bool):
        n_params = 784 * width + (depth - 1) * width * width + width * 10
        if n_params > limit:
            raise ConfigError(f"depth {depth} x width {width} gives {n_params:,} weights, more than "
                              f"max_parameters={limit:,}; use fewer or smaller columns or raise max_parameters")
    if depth > MAX_DEPTH:
        raise ConfigError(f"depth {depth} is more than {MAX_DEPTH:,} hidden columns")
