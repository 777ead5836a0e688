"""The snapshots a long replay has a worker make behind its cycles (automation/replay_snapshots.py) are the
ones its books would make, in order; an error the worker meets reaches the books."""

import json
from collections import defaultdict

import pytest

from automation.replay_snapshots import MadeBehind
from learning.counters import SUMS
from learning.insights import Scope, insights_from, trades_figures

TRADES = {"n": 0, "wins": 0, "expectancy_pct": None, "expectancy_r": None, "gains": 0, "losses": 0}


def counters(n: int, hits: int) -> dict[str, dict[str, dict]]:
    sums = dict(zip(SUMS, (n, hits, n, 60.0 * n, 0.2 * n), strict=True))
    return defaultdict(
        dict, {"all": {"": dict(sums)}, "regime": {"TREND": dict(sums)}, "calibration": {"6": dict(sums)}}
    )


def test_the_worker_makes_the_snapshots_the_books_would(settings):
    settings.LEARNING_MIN_SAMPLES = 2
    scope, figures = Scope(1, 2), counters(3, 1)
    expected = []
    with MadeBehind(scope, figures) as behind:
        won = {**TRADES, "n": 2, "wins": 1, "gains": 5}  # sent only when they change
        for n, hits, trades in ((4, 2, TRADES), (5, 2, TRADES), (6, 3, won), (7, 3, won)):
            moved = counters(n, hits)
            for dimension, rows in moved.items():
                figures[dimension] |= rows
            behind.add(
                [
                    (d, v, tuple(s[name] for name in SUMS))
                    for d, rows in moved.items()
                    for v, s in rows.items()
                ],
                trades,
                {},
            )
            expected.append(insights_from(scope, figures, trades_figures(**trades), {}))
        made = behind.made()
        assert behind.made() == []  # taken once
        behind.worker.kill()
        behind.worker.join()
        assert behind.made() == []  # and without asking the worker, when nothing was added since
    assert [resolved for resolved, _ in made] == [4, 5, 6, 7]
    for (_, data), want in zip(made, expected, strict=True):
        got = json.loads(data)
        assert {k: v for k, v in got.items() if k != "computed_at"} == json.loads(
            json.dumps({k: v for k, v in want.items() if k != "computed_at"})
        )


def test_an_error_in_the_worker_reaches_the_books():
    with MadeBehind(Scope(1, 2), counters(1, 1)) as behind:
        behind.add([("prompt_version", "not an id", (1, 1, 1, 60.0, 0.2))], TRADES, {})
        with pytest.raises(ValueError, match="not an id"):
            behind.made()
