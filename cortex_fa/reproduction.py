"""Whether a measured test error reproduces a published one: an equivalence test.

A reproduction is judged the way :mod:`cortex_fa.verdicts` judges depth. With
``d = measured - published`` (percentage points) and its 95 % interval
``[lo - published, hi - published]`` over seeds, and a declared margin ``m``
(the paper's own spread where it gives one, else :data:`DEFAULT_MARGIN`):

* **reproduced**: the whole interval lies inside ``[-m, +m]``;
* **not reproduced**: the whole interval lies outside it (above ``+m`` or
  below ``-m``);
* **undetermined**: otherwise, and whenever there is no interval (one seed,
  or no run): a mean that merely lands near the published value, or a wide
  interval that happens to cover it, is not a reproduction.

The bounds are compared after rounding to :data:`DECIMALS` places, so a
difference that equals the margin in exact arithmetic (0.3 computed as
0.30000000000000004) is inside it: no float residue decides a verdict.

A preset whose reference is a measurement of other software rather than a
paper (``[published] kind = "peer measurement"``) gets the same test with
other words (*matches peer*, *differs from peer*) and is never counted among
reproduced papers (:func:`count_reproduced`).
"""

from __future__ import annotations

import math

DEFAULT_MARGIN = 0.3  # percentage points, where the paper gives no spread
DECIMALS = 9
REPRODUCED, NOT_REPRODUCED, UNDETERMINED = "reproduced", "not reproduced", "undetermined"
PUBLICATION, PEER = "publication", "peer measurement"
KINDS = (PUBLICATION, PEER)
_PEER_WORDS = {REPRODUCED: "matches peer", NOT_REPRODUCED: "differs from peer", UNDETERMINED: UNDETERMINED}


def verdict(published: float, lo: float, hi: float, margin: float = DEFAULT_MARGIN) -> str:
    """The equivalence verdict of a measured interval ``[lo, hi]`` against ``published``.

    Parameters
    ----------
    published : float
        The published test error (percent).
    lo, hi : float
        The measured 95 % interval of the test error (percent); NaN when
        there is none (one seed, or not run).
    margin : float
        Half-width of the equivalence region, percentage points (> 0).

    Returns
    -------
    str
        :data:`REPRODUCED`, :data:`NOT_REPRODUCED` or :data:`UNDETERMINED`.
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0 percentage points, got {margin!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return UNDETERMINED
    d_lo, d_hi, m = (round(x, DECIMALS) for x in (lo - published, hi - published, margin))
    if -m <= d_lo and d_hi <= m:
        return REPRODUCED
    if d_lo > m or d_hi < -m:
        return NOT_REPRODUCED
    return UNDETERMINED


def label(result: str, kind: str = PUBLICATION) -> str:
    """The words for a verdict: a peer measurement is matched, not reproduced."""
    return _PEER_WORDS[result] if kind == PEER else result


def count_reproduced(rows) -> tuple[int, int]:
    """(reproduced, compared) over rows of published numbers, peer measurements left out.

    ``rows`` are dicts with ``kind`` and ``verdict`` (as from
    :meth:`cortex_fa.presets.Preset.compare`); a row without a measurement
    (``n == 0``) is not compared.
    """
    papers = [r for r in rows if r.get("kind", PUBLICATION) == PUBLICATION and r.get("n", 0) > 0]
    return sum(r["verdict"] == REPRODUCED for r in papers), len(papers)
