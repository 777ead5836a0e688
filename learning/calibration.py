"""The analyst's stated confidence as a calibrated probability of a WIN (docs/learning.md, "Calibration").

An isotonic regression of the outcome on the stated confidence: the mean win rate of the calls at each
confidence, pooled with neighbours wherever a higher confidence was right less often, so that a higher
stated confidence never means a lower probability. Fitted on earlier calls only by whoever calls it."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
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
    fitted = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1, increasing=True).fit(
        x, y, sample_weight=w
    )
    return Calibration(
        tuple(fitted.X_thresholds_.tolist()), tuple(fitted.y_thresholds_.tolist()), float(w.sum())
    )
