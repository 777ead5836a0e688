"""The stated confidence's isotonic calibration: a known answer, the aggregated form, JSON, and when there is
nothing to fit."""

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from learning.calibration import Calibration, fit_calibration

# Four calls at each stated confidence (60, 70, 80, 90): right 1, 3, 1 and 4 times.
CONFIDENCE = [60] * 4 + [70] * 4 + [80] * 4 + [90] * 4
WON = [1, 0, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1]


def test_a_higher_confidence_right_less_often_is_pooled_with_the_one_below():
    calibration = fit_calibration(CONFIDENCE, WON)

    # 70 (3 of 4) and 80 (1 of 4) break the order: pooled, 4 of 8.
    assert calibration.thresholds == (60, 70, 80, 90)
    assert calibration.values == pytest.approx((0.25, 0.5, 0.5, 1.0))
    assert calibration.n == 16
    assert calibration.probability(75) == pytest.approx(0.5)
    assert calibration.probability(85) == pytest.approx(0.75)  # linear between thresholds
    assert (calibration.probability(10), calibration.probability(100)) == pytest.approx((0.25, 1.0))
    assert calibration.probabilities([60, 85]) == pytest.approx([0.25, 0.75])


def test_counts_per_bucket_as_weights_give_the_same_calibration():
    per_call = fit_calibration(CONFIDENCE, WON)
    per_bucket = fit_calibration([60, 70, 80, 90], [0.25, 0.75, 0.25, 1.0], weights=[4, 4, 4, 4])
    assert per_bucket.thresholds == per_call.thresholds
    assert per_bucket.values == pytest.approx(per_call.values)
    assert per_bucket.n == 16


def test_it_agrees_with_sklearns_predict_and_never_falls_as_confidence_rises():
    rng = np.random.default_rng(3)
    stated = rng.integers(50, 96, 500)
    won = (rng.random(500) < 0.4).astype(int)  # says 50-95, right 40 %
    calibration = fit_calibration(stated, won)
    grid = np.arange(0, 101, 0.5)

    fitted = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(stated, won)
    assert calibration.probabilities(grid) == pytest.approx(fitted.predict(grid))
    assert np.all(np.diff(calibration.probabilities(grid)) >= 0)
    assert calibration.probability(90) < 0.6


def test_the_thresholds_are_sklearns_to_the_bit():
    # As the outcome model fits it (whole-number confidences, one call each), as the policy does (buckets'
    # middles weighted by their counts, with win rates), on continuous values with ties, and on confidences
    # closer than numpy's resolution, which the regression counts as one.
    rng = np.random.default_rng(4)
    cases = []
    for n in (2, 3, 40, 500, 2579):
        cases.append((rng.integers(0, 101, n), rng.random(n) < rng.random(), None))
        cases.append((rng.normal(70, 10, n).round(1), rng.random(n) < 0.5, rng.random(n) + 0.01))
    for k in (2, 5, 20):
        counts = rng.integers(1, 60, k)
        cases.append(
            (rng.choice(20, k, replace=False) * 5 + 2.5, rng.integers(0, counts + 1) / counts, counts)
        )
    close = 3.0 + np.array([0, 1, 2, 3, 40]) * np.finfo(float).eps  # 4.4e-16 apart, then 8.9e-15 above
    cases.append((np.repeat(close, 3), rng.random(15) < 0.5, None))
    for confidences, wins, weights in cases:
        wins = np.asarray(wins, dtype=float)
        wins[:2] = [0, 1]  # both outcomes, or there is nothing to fit
        calibration = fit_calibration(confidences, wins, weights)
        fitted = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(confidences, wins, weights)
        assert calibration.thresholds == tuple(fitted.X_thresholds_.tolist())
        assert np.array(calibration.values).tobytes() == fitted.y_thresholds_.tobytes()


def test_json_round_trip():
    calibration = fit_calibration(CONFIDENCE, WON)
    stored = json.loads(json.dumps(calibration.to_json()))
    assert Calibration.from_json(stored) == calibration


@pytest.mark.parametrize(
    "confidences, wins, weights",
    [
        ([], [], None),
        ([80], [1], None),
        ([70, 80, 90], [1, 1, 1], None),
        ([70, 80, 90], [0, 0, 0], None),
        ([70, 80], [1, 0], [3, 0]),  # the loss weighs nothing
    ],
)
def test_nothing_to_fit(confidences, wins, weights):
    assert fit_calibration(confidences, wins, weights) is None


def test_one_stated_confidence_gives_its_win_rate_everywhere():
    calibration = fit_calibration([90] * 10, [1] * 4 + [0] * 6)
    assert calibration.probability(50) == calibration.probability(95) == pytest.approx(0.4)
