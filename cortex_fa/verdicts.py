"""Verdicts on counts: does a rule keep up with the reference, fall behind, or is it undetermined?

Test errors are counted in misclassified test images (integers), and a rule
is compared with the reference seed by seed (the random streams pair seeds
across rules, see :mod:`cortex_fa.streams`). With :math:`d_s` the paired
difference in misclassified images, :math:`\\bar d` its mean over seeds,
:math:`[\\ell, u]` its two-sided 95 % Student-t interval and :math:`m` the
declared margin in images (0.5 percentage points of 10,000 = 50):

* **keeps up** if :math:`-m < \\ell` and :math:`u < m` (the interval lies inside
  :math:`\\pm m`: an equivalence test, TOST at the 2.5 % level per side);
* **falls behind** if :math:`\\ell > m` (the interval lies above the margin);
* **ahead** if :math:`u < -m` (the interval lies below minus the margin: the
  rule beats the reference by more than the margin);
* **undetermined** otherwise (too few seeds or too much spread to say).

A breaking depth is the first depth at which a rule falls behind; it is
``undetermined`` if an earlier depth is undetermined, and ``none`` if the
rule keeps up at every depth studied.

No float tie decides a verdict: the mean and variance of the integer
differences are exact fractions, an interval endpoint equals the margin only
where every seed gives the same difference (zero spread), and there the
comparison is exact (a mean exactly at the margin is not beyond it).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import xarray as xr
from scipy import stats

from cortex_fa import analysis
from cortex_fa.errors import ResultsError

KEEPS_UP, FALLS_BEHIND, AHEAD, UNDETERMINED = "keeps up", "falls behind", "ahead", "undetermined"
NO_DATA = "no data"
N_TEST = 10_000
NONE = "none"  # a breaking depth: no depth studied falls behind
# What each test-error metric is, for table titles and figure notes.
METRIC_TEXT = {
    "selected": "selected test error (at the epoch of best validation accuracy)",
    "final": "final test error (at the last logged epoch)",
    "oracle_best": "oracle-best test error (the test-set minimum: optimistic)",
}


def depth_dim(study) -> str:
    """The name of the study's depth dimension (``n_hidden``; ``depth`` in files of 0.3 and older)."""
    for name in ("n_hidden", "depth"):
        if name in study.dims:
            return name
    raise ResultsError("the study has no depth dimension (n_hidden)")


def misclassified(study: xr.Dataset, metric: str | None = None, n_test: int = N_TEST) -> xr.DataArray:
    """Misclassified test images per run at the ``metric`` epoch (``selected`` by default): integers, NaN if missing."""
    metric = metric or analysis.default_metric(study)
    err = analysis.test_errors(study)[f"{metric}_error"]
    return np.round(err * n_test / 100.0).rename("misclassified")


def _exact_interval(diffs, level: float):
    """``(mean, lo, hi, n, spread)`` of integer differences; mean and spread as Fractions."""
    d = [int(v) for v in diffs if np.isfinite(v)]
    n = len(d)
    if n == 0:
        return None
    mean = Fraction(sum(d), n)
    if n < 2:
        return mean, None, None, n, None
    var = sum((Fraction(v) - mean) ** 2 for v in d) / (n - 1)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(var) ** 0.5 / n**0.5
    return mean, float(mean) - half, float(mean) + half, n, var


def verdict(diffs, margin: int, level: float = 0.95) -> str:
    """The verdict for one rule at one depth from its per-seed differences in images."""
    got = _exact_interval(diffs, level)
    if got is None:
        return NO_DATA
    mean, lo, hi, n, var = got
    if var is None:
        return UNDETERMINED  # one seed: no interval
    if var == 0:  # every seed the same difference: the interval is the point, compare exactly
        return (FALLS_BEHIND if mean > margin else AHEAD if mean < -margin
                else KEEPS_UP if -margin < mean < margin else UNDETERMINED)
    if lo > margin:
        return FALLS_BEHIND
    if hi < -margin:
        return AHEAD
    if -margin < lo and hi < margin:
        return KEEPS_UP
    return UNDETERMINED


def verdicts(study: xr.Dataset, margin: float = 0.5, reference: str = "bp", metric: str | None = None,
             level: float = 0.95, n_test: int = N_TEST) -> xr.Dataset:
    """Per rule and depth: paired differences to ``reference`` in images and points, and the verdict.

    Parameters
    ----------
    margin : float
        Percentage points of test error; turned into whole images
        (``margin * n_test / 100``, 50 for 0.5 points).

    Returns
    -------
    xarray.Dataset
        Over ``rule`` x depth (and any other run dims but ``seed``):
        ``diff_mean``, ``diff_lo``, ``diff_hi`` (images), the same ``*_pp``
        in percentage points, ``n`` (paired seeds) and ``verdict`` (str);
        attributes ``margin_images``, ``margin_pp`` (the margin in points
        that those whole images make), ``n_test``, ``reference``, ``metric``
        and ``level``.
    """
    if reference not in study["rule"].values:
        raise ResultsError(f"reference rule '{reference}' is not in the study "
                           f"(rules: {', '.join(map(str, study.rule.values))})")
    margin_images = int(round(margin * n_test / 100.0))
    count = misclassified(study, metric, n_test)
    diff = count - count.sel(rule=reference, drop=True)

    def kernel(x):
        got = _exact_interval(x, level)
        if got is None:
            return np.nan, np.nan, np.nan, 0.0, NO_DATA
        mean, lo, hi, n, _ = got
        return (float(mean), np.nan if lo is None else lo, np.nan if hi is None else hi, float(n),
                verdict(x, margin_images, level))

    mean, lo, hi, n, word = xr.apply_ufunc(np.vectorize(kernel, signature="(s)->(),(),(),(),()", otypes=[float] * 4 + [object]),
                                           diff, input_core_dims=[["seed"]], output_core_dims=[[]] * 5)
    out = xr.Dataset({"diff_mean": mean, "diff_lo": lo, "diff_hi": hi, "n": n.astype(int), "verdict": word.astype(str)})
    for k in ("mean", "lo", "hi"):
        out[f"diff_{k}_pp"] = out[f"diff_{k}"] * 100.0 / n_test
    out.attrs.update(margin_images=margin_images, margin_pp=margin_images * 100.0 / n_test, n_test=n_test,
                     reference=reference, metric=metric or analysis.default_metric(study), level=level)
    return out


def declared_defaults(study: xr.Dataset) -> dict:
    """A protocol study's declared ``reference``, ``margin`` (points) and ``metric``; ``{}`` for other studies.

    A key is None where the protocol leaves it out; callers fall back to
    :func:`verdicts`' own defaults then.
    """
    import json

    if "protocol" not in study.attrs:
        return {}
    try:
        declared = json.loads(study.attrs["protocol"])
    except ValueError:
        return {}
    return {"reference": declared.get("reference"), "metric": declared.get("metric"),
            "margin": declared["margin_images"] / 100.0 if "margin_images" in declared else None}


def margin_text(v: xr.Dataset) -> str:
    """The margin of a :func:`verdicts` result in images and points: ``"50 images = 0.5 pp"``."""
    return f"{int(v.attrs['margin_images'])} images = {float(v.attrs['margin_pp']):g} pp"


def breaking_depth(study_or_verdicts: xr.Dataset, **kwargs) -> xr.DataArray:
    """Per rule: the first depth that falls behind, ``"undetermined"`` if an earlier one is, else ``"none"``."""
    v = study_or_verdicts if "verdict" in study_or_verdicts else verdicts(study_or_verdicts, **kwargs)
    dim = depth_dim(v)
    words = v["verdict"].transpose(..., dim)
    depths = [int(d) for d in v[dim].values]

    def first(row):
        for d, w in zip(depths, row):
            if w == FALLS_BEHIND:
                return str(d)
            if w in (UNDETERMINED, NO_DATA):
                return UNDETERMINED
        return NONE

    out = xr.apply_ufunc(np.vectorize(first, signature="(d)->()", otypes=[object]), words,
                         input_core_dims=[[dim]]).astype(str)
    out.attrs.update(v.attrs, long_name="breaking depth: first depth that falls behind the reference")
    return out.rename("breaking_depth")
