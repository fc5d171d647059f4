"""A protocol declared before the run: every rate chosen on validation by a rule written down first.

A preset's ``[protocol]`` table declares, before anything is trained:

* ``reference``: the rule the verdicts compare with (``bp``);
* ``selection_rates``: the learning-rate grid (at least 4 rates) and
  ``selection_seeds`` (at least 2, a subset of the study's seeds) on which
  each rule's rate is chosen **per depth**, at the study's own budget;
* ``exclusion``: which runs the verdicts leave out (``"none"``: no run is
  excluded; diverged and stalled runs are counted and shown) and an
  optional ``exclusion_note`` in words;
* ``margin_images`` and ``metric``: the verdicts' margin in misclassified
  test images and the test error they compare (``selected``: at the epoch
  of best validation accuracy).

The steps are pure functions on xarray: :func:`selection_spec` (the
selection sweep: rules x depths x selection seeds x rates),
:func:`choose_rates` (its scores, eligibility and choice),
:func:`study_spec` (the study sweep, each cell at its chosen rate; the
selection seeds' runs at that rate are the study's runs for those seeds and
are taken from the selection, :func:`reuse_selection`) and
:func:`attach_choice` (the grid, the scores and the choice stored in the
study file). ``cortex-fa protocol`` runs them.
"""

from __future__ import annotations

import json
import math

import numpy as np
import xarray as xr

from cortex_fa.errors import ConfigError, ResultsError

KEYS = ("reference", "selection_rates", "selection_seeds", "exclusion", "exclusion_note", "margin_images", "metric")
# "none": every run enters the verdicts (diverged and stalled runs are counted in the report).
EXCLUSIONS = ("none", "diverged", "diverged_or_stalled")
METRICS = ("selected", "final")
MIN_RATES, MIN_SEEDS = 4, 2
CANDIDATE = "lr_candidate"  # the grid's dim in a study file (the study itself has no lr dim)


def check_protocol(preset) -> dict:
    """The preset's ``[protocol]`` table, validated and normalised (rates sorted ascending).

    Raises
    ------
    ConfigError
        One line naming the key and what it needs.
    """
    table, name = preset.protocol, f"preset {preset.name} [protocol]"
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"preset {preset.name} has no [protocol] table; run it with cortex-fa reproduce")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ConfigError(f"{name}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(KEYS)}")
    missing = [k for k in KEYS if k not in table and k != "exclusion_note"]
    if missing:
        raise ConfigError(f"{name}: missing {', '.join(missing)} (a protocol is declared in full before the run)")
    rates = table["selection_rates"]
    if (not isinstance(rates, list) or any(isinstance(r, bool) or not isinstance(r, (int, float))
                                           or not math.isfinite(r) or r <= 0 for r in rates)):
        raise ConfigError(f"{name}: selection_rates must be a list of learning rates > 0, got {rates!r}")
    if len(set(rates)) < MIN_RATES:
        raise ConfigError(f"{name}: selection_rates needs at least {MIN_RATES} different rates, got {rates!r}")
    seeds = table["selection_seeds"]
    if not isinstance(seeds, list) or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ConfigError(f"{name}: selection_seeds must be a list of seeds, got {seeds!r}")
    if len(set(seeds)) < MIN_SEEDS:
        raise ConfigError(f"{name}: selection_seeds needs at least {MIN_SEEDS} different seeds, got {seeds!r}")
    for quick in (False, True):
        spec = preset.spec(quick)
        where = f"{name}{' with [quick]' if quick else ''}"
        if not set(seeds) <= set(spec.seeds):
            raise ConfigError(f"{where}: selection_seeds {seeds} must be seeds of the study ({list(spec.seeds)}); "
                              "their runs at the chosen rate are the study's runs for those seeds")
        if table["reference"] not in spec.rules:
            raise ConfigError(f"{where}: reference {table['reference']!r} is not one of the rules {list(spec.rules)}")
        if "lr" in spec.grid or any("lr" in o for o in (*spec.per_rule.values(), *spec.per_cell.values())):
            raise ConfigError(f"{where}: the protocol chooses lr; remove lr from [grid], per_rule and per_cell")
        if not spec.base.get("validation"):
            raise ConfigError(f"{where}: rates are chosen on a validation split; set validation in [run]")
    if table["exclusion"] not in EXCLUSIONS:
        raise ConfigError(f"{name}: exclusion must be one of {', '.join(EXCLUSIONS)}, got {table['exclusion']!r}")
    if table["metric"] not in METRICS:
        raise ConfigError(f"{name}: metric must be selected or final (never chosen on the test set), "
                          f"got {table['metric']!r}")
    margin = table["margin_images"]
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
        raise ConfigError(f"{name}: margin_images must be a whole number of test images >= 0, got {margin!r}")
    return {**table, "selection_rates": sorted(float(r) for r in set(rates)), "selection_seeds": sorted(set(seeds))}


def _with_depths(spec, depths):
    from cortex_fa.spec import SweepSpec

    if depths is None:
        return spec
    depths = tuple(int(d) for d in depths)
    return SweepSpec(**{**spec.__dict__, "depths": depths})


def selection_spec(preset, *, quick: bool = False, depths=None):
    """The selection sweep: the study's rules and depths, the selection seeds, every rate of the grid."""
    from cortex_fa.spec import SweepSpec

    protocol = check_protocol(preset)
    spec = _with_depths(preset.spec(quick), depths)
    return SweepSpec(**{**spec.__dict__, "seeds": tuple(protocol["selection_seeds"]),
                        "grid": {**spec.grid, "lr": tuple(protocol["selection_rates"])}})


def _run_values(study, name):
    from cortex_fa.selection import _run_option

    return _run_option(study, name)


def choose_rates(selection: xr.Dataset) -> xr.Dataset:
    """Per rule and depth, the rate of the grid with the best validation score among eligible ones.

    The score of a rate is its best validation accuracy (the accuracy early
    stopping selects), mean over the selection seeds; the decision compares
    the integer sum over seeds of correctly classified validation images
    (``selection_correct``), so no float tie decides, and an exact tie goes
    to the smaller rate. A rate is eligible only if every seed's run exists,
    none diverged and none stalled at chance. If no rate of a cell is
    eligible, its smallest rate is used and ``chosen_fallback`` says so.

    Returns
    -------
    xarray.Dataset
        Over ``rule``, ``n_hidden`` (and ``lr_candidate``): ``selection_score``
        (percent), ``selection_correct``, ``selection_eligible``,
        ``chosen_lr`` and ``chosen_fallback``.
    """
    if "lr" not in selection.dims or "validation_accuracy" not in selection:
        raise ResultsError("not a selection study: it needs an lr dim and a validation split "
                           "(made by cortex-fa protocol select)")
    best = selection["validation_accuracy"].max("step", skipna=True)
    size = _run_values(selection, "validation")
    correct = np.round(best * size)
    reason = selection["stop_reason"] if "stop_reason" in selection else xr.full_like(selection["status"], "")
    bad = ((selection["status"] != "ok") | reason.isin(["diverged", "stalled_at_chance"]) | best.isnull()
           | (best < 0.2))
    score = (100.0 * best).mean("seed")
    eligible = ~bad.any("seed")
    total = correct.sum("seed", min_count=1).where(eligible)
    rates = selection["lr"].values.astype(float)
    order = np.argsort(rates, kind="stable")
    chosen = np.full(total.shape[:2], np.nan)
    fallback = np.zeros(total.shape[:2], dtype=bool)
    values = total.transpose("rule", "n_hidden", "lr").values
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            cell = values[i, j, order]
            if np.isfinite(cell).any():
                chosen[i, j] = rates[order][int(np.nanargmax(cell))]  # first maximum: the smaller rate
            else:
                chosen[i, j], fallback[i, j] = rates[order][0], True
    dims = ("rule", "n_hidden")
    out = xr.Dataset({
        "selection_score": score.rename(lr=CANDIDATE).assign_attrs(
            long_name="best validation accuracy, mean over the selection seeds", units="percent"),
        "selection_correct": total.fillna(-1).astype(np.int64).rename(lr=CANDIDATE).assign_attrs(
            long_name="correctly classified validation images at the best epoch, summed over the selection "
                      "seeds (-1: not eligible)", units="1"),
        "selection_eligible": eligible.rename(lr=CANDIDATE).assign_attrs(
            long_name="every selection seed ran, none diverged or stalled at chance"),
        "chosen_lr": (dims, chosen, {"long_name": "learning rate chosen on the selection runs", "units": "1"}),
        "chosen_fallback": (dims, fallback, {"long_name": "no rate was eligible: the smallest rate is used"}),
    }, coords={"rule": selection["rule"].values, "n_hidden": selection["n_hidden"].values})
    return out.transpose("rule", "n_hidden", CANDIDATE)


def study_spec(preset, choice: xr.Dataset, *, quick: bool = False, depths=None, reuse: bool = True):
    """The study sweep: every rule at each depth at its chosen rate (``per_cell``).

    With ``reuse`` the selection seeds are left out: their runs at the chosen
    rate are the study's runs for those seeds (:func:`reuse_selection`).
    Returns None when nothing is left to run.
    """
    from cortex_fa.spec import SweepSpec

    protocol = check_protocol(preset)
    spec = _with_depths(preset.spec(quick), depths)
    missing = [d for d in spec.depths if d not in choice["n_hidden"].values]
    rules = [r for r in spec.rules if r not in choice["rule"].values]
    if missing or rules:
        raise ConfigError(f"the selection has no choice for depth(s) {missing or '-'} / rule(s) {rules or '-'}; "
                          "run cortex-fa protocol select for them first")
    per_cell = {**spec.per_cell}
    for rule in spec.rules:
        for depth in spec.depths:
            lr = float(choice["chosen_lr"].sel(rule=rule, n_hidden=depth))
            per_cell[f"{rule}@{depth}"] = {**per_cell.get(f"{rule}@{depth}", {}), "lr": lr}
    seeds = tuple(s for s in spec.seeds if not (reuse and s in protocol["selection_seeds"]))
    if not seeds:
        return None
    return SweepSpec(**{**spec.__dict__, "seeds": seeds, "per_cell": per_cell})


def reuse_selection(selection: xr.Dataset, choice: xr.Dataset, spec_all, study: xr.Dataset | None = None):
    """The study with the selection seeds' runs at the chosen rates added (taken from the selection file).

    ``spec_all`` is the study's sweep over every seed; each reused run's
    ``config_hash`` must be the one that sweep gives its cell, so a run is
    reused only if it is exactly the run the study would make.
    """
    from cortex_fa.chunks import concat_studies

    chosen = choice["chosen_lr"].sel(rule=list(spec_all.rules), n_hidden=list(spec_all.depths))
    seeds = [s for s in selection["seed"].values if s in spec_all.seeds]
    taken = selection.sel(rule=list(spec_all.rules), n_hidden=list(spec_all.depths), seed=seeds)
    taken = taken.sel(lr=chosen).drop_vars("lr")
    expected = {(c.study_label, c.depth, c.seed): c.hash() for c in spec_all.configs()}
    for rule in taken["rule"].values:
        for depth in taken["n_hidden"].values:
            for seed in taken["seed"].values:
                have = str(taken["config_hash"].sel(rule=rule, n_hidden=depth, seed=seed).values)
                want = expected[(str(rule), int(depth), int(seed))]
                if have != want:
                    raise ResultsError(f"selection run rule={rule} depth={depth} seed={seed} at the chosen rate has "
                                       f"config hash {have}, the study's run would be {want}: the selection was "
                                       "made with other settings; select again")
    taken.attrs = dict(study.attrs) if study is not None else dict(selection.attrs)
    if study is None:
        return taken
    return concat_studies([taken, study], "seed")


def attach_choice(study: xr.Dataset, choice: xr.Dataset, protocol: dict, preset_name: str) -> xr.Dataset:
    """``study`` with the grid, the scores and the choice of its depths, and the protocol as attributes."""
    part = choice.sel(n_hidden=study["n_hidden"].values, rule=study["rule"].values)
    out = study.assign({name: part[name] for name in part.data_vars})
    out[CANDIDATE].attrs.update(long_name="learning rate of the selection grid", units="1")
    out.attrs["protocol"] = json.dumps(protocol, sort_keys=True)
    out.attrs["protocol_preset"] = preset_name
    return out


def is_protocol_study(study: xr.Dataset) -> bool:
    return "protocol" in study.attrs and "chosen_lr" in study
