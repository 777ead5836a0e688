"""The analyst's stated confidence as a calibrated probability of a WIN (docs/learning.md, "Calibration").

An isotonic regression of the outcome on the stated confidence: the mean win rate of the calls at each
confidence, pooled with neighbours wherever a higher confidence was right less often, so that a higher
stated confidence never means a lower probability. Fitted on earlier calls only by whoever calls it."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import isotonic_regression
from sklearn.isotonic import IsotonicRegression


@dataclass(frozen=True)
class Calibration:
    """The fitted step function: at each threshold (a stated confidence) the probability of a WIN; between
    thresholds linear, beyond them the end values (what IsotonicRegression's predict gives with clip)."""

    thresholds: tuple[float, ...]
    values: tuple[float, ...]
    n: float  # the calls (or the sum of their weights) it was fitted on

    def probability(self, confidence: float) -> float:
        # np.interp on the stored points: the cycle asks every hour and a replay thousands of times, and
        # sklearn's predict validates its input at each call, most of its time.
        return float(np.interp(confidence, self.thresholds, self.values))

    def probabilities(self, confidences) -> np.ndarray:
        return np.interp(np.asarray(confidences, dtype=float), self.thresholds, self.values)

    def to_json(self) -> dict:
        return {"thresholds": list(self.thresholds), "values": list(self.values), "n": self.n}

    @classmethod
    def from_json(cls, data: dict) -> "Calibration":
        return cls(tuple(data["thresholds"]), tuple(data["values"]), data["n"])


def fit_calibration(
    confidences: Sequence[float], wins: Sequence[float], weights: Sequence[float] | None = None
) -> Calibration | None:
    """The isotonic calibration of `wins` (1 for a WIN, 0 for a LOSS; or a bucket's win rate, with its
    count as its weight) on `confidences`. None with fewer than two points or without both outcomes:
    nothing to tell a confidence from another by."""
    x, y = np.asarray(confidences, dtype=float), np.asarray(wins, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    keep = w > 0
    x, y, w = x[keep], y[keep], w[keep]
    if len(x) < 2 or not 0 < np.average(y, weights=w) < 1:
        return None
    thresholds, values = _isotonic(x, y, w)
    return Calibration(tuple(thresholds.tolist()), tuple(values.tolist()), float(w.sum()))


def _isotonic(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The X_thresholds_ and y_thresholds_ of IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1,
    increasing=True).fit(x, y, sample_weight=w), computed as it computes them: the points sorted by x (then
    y), each x's weighted mean y (summed in that order), scipy's pool-adjacent-violators fit of those means,
    clipped to [0, 1], less the points inside a flat stretch. Without its checks and the interpolating
    function it builds, most of its time (at 1,000 of the replay's calls 0.52-0.57 -> 0.09 ms).
    The regression counts an x less than 1e-15 (numpy's resolution) above the first of its run as that x;
    where two differ by less without being equal (never the analyst's whole-number confidences, nor the
    buckets' middles), the regression itself fits them."""
    order = np.lexsort((y, x))
    x, y, w = x[order], y[order], w[order]
    step = np.diff(x)
    if np.any((step > 0) & (step < np.finfo(float).resolution)):
        fitted = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1, increasing=True)
        fitted.fit(x, y, sample_weight=w)
        return fitted.X_thresholds_, fitted.y_thresholds_
    first = np.concatenate([[True], step > 0])
    group = np.cumsum(first) - 1
    weight = np.bincount(group, weights=w)
    values = np.clip(isotonic_regression(np.bincount(group, weights=y * w) / weight, weights=weight).x, 0, 1)
    kept = np.ones(len(values), dtype=bool)  # the ends, and the points where the values change on one side
    kept[1:-1] = (values[1:-1] != values[:-2]) | (values[1:-1] != values[2:])
    return x[first][kept], values[kept]
