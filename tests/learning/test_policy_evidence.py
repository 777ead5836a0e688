"""The policy's evidence (learning.policy.Evidence) computed by hand where a library call or a plainer
computation cost more: each shortcut holds to the bit what it replaced, on counters like a replay's."""

import random
from collections import defaultdict
from datetime import timedelta

import numpy as np
import pytest
from scipy import stats

from learning.policy import CounterTable, Evidence, PolicyTotals, benjamini_hochberg

from .test_policy_totals import ALIKE, summed_rows

HOUR = timedelta(hours=1)


def table(count: int = 3000, seed: int = 11) -> CounterTable:
    """Two bots' counters over count hours: every field's values, sixty blocks, a weak edge when trending."""
    draw = random.Random(seed)  # noqa: S311 - a seeded sample, not a secret
    added = []
    for hour in range(count):
        regime = draw.choice(["TREND_LOW_VOL", "TREND_HIGH_VOL", "RANGE_LOW_VOL", "RANGE_HIGH_VOL"])
        key = (
            draw.choice([1, 1, 2]),
            draw.choice(range(50, 100, 5)),
            regime,
            draw.choice(["BULLISH", "BEARISH", "NEUTRAL", ""]),
            draw.choice(["<30", "30-70", ">70"]),
            hour // 50,
        )
        r = draw.gauss(0.3 if regime.startswith("TREND") else -0.1, 1.5)
        added.append(
            (key, (1, r, r * r, int(r > 0), max(r, 0.0), int(r < 0), min(r, 0.0), draw.uniform(1, 9)))
        )
    return PolicyTotals(summed_rows(added)).table()


def evidence(count: int = 3000, seed: int = 11) -> Evidence:
    return Evidence(table(count, seed), ALIKE, HOUR)


def test_benjamini_hochberg_is_scipy_s_to_the_bit():
    found = evidence()
    candidates = found.candidates(with_thresholds=True)
    long = found.stats(np.array([found.mask(c) for c in candidates]), found.long)
    draw = np.random.default_rng(3)
    tied = np.repeat(draw.uniform(0, 0.2, 20), 3)
    edges = [np.array([0.0, 1.0, 0.5, 0.0]), np.array([0.3])]
    for p in [long["p_above"], long["p_below"], draw.uniform(0, 1, 200), tied, *edges]:
        assert benjamini_hochberg(p).tolist() == stats.false_discovery_control(p, method="bh").tolist()


def test_the_spread_of_some_rows_is_theirs_among_every_row_s():
    """`spread` sums per cluster only for the rows selected: theirs are what every row's would be, to the bit;
    the others are as for no calls."""
    found = evidence()
    masks = np.array([found.mask(c) for c in found.candidates(with_thresholds=True)])
    every = found.stats(masks, found.recent)
    some = np.arange(len(masks)) % 3 == 0

    spread = found.spread(masks, found.recent, found.stats(masks, found.recent, robust=False), some)

    for name in ("se", "clusters", "p_above", "p_below"):
        assert spread[name][some].tolist() == every[name][some].tolist(), name
    assert every["clusters"][some].min() > 1 and np.isfinite(every["se"][some]).all()  # sums that count
    assert (spread["clusters"][~some] == 0).all() and np.isinf(spread["se"][~some]).all()
    assert (spread["p_above"][~some] == 1).all() and (spread["p_below"][~some] == 1).all()
    none = found.spread(masks, found.recent, every, np.zeros(len(masks), bool))
    assert not none["clusters"].any() and np.isinf(none["se"]).all() and (none["p_above"] == 1).all()


def test_the_candidates_masks_are_their_rows_one_by_one():
    """`masks` takes every candidate's conditions at once: each candidate's row is the counter rows whose
    values it names, read one by one; fewer conditions, more, or a value no row holds, alike."""
    found = evidence(600)
    candidates = [
        *found.candidates(with_thresholds=True),
        {"regime": "TREND_LOW_VOL", "market_sentiment": "BULLISH", "min_confidence": 70},
        {"regime": "NO_SUCH_REGIME"},
        {},
    ]

    def inside(row: int, conditions: dict) -> bool:
        return all(
            found.bucket[row] >= value
            if name == "min_confidence"
            else found.levels[name][found.codes[name][row]] == value
            for name, value in conditions.items()
        )

    masks = found.masks(candidates)

    expected = [[inside(row, c) for row in range(len(found.bucket))] for c in candidates]
    assert masks.tolist() == expected
    assert [found.mask(c).tolist() for c in candidates] == expected
    assert masks[:-2].sum(axis=1).min() > 0 and not masks[-2].any() and masks[-1].all()


def test_the_pairs_tried_are_those_some_row_holds_in_the_order_of_their_values():
    found = evidence(600)
    fields = [name for name, levels in found.levels.items() if len([v for v in levels if v]) > 1]

    pairs = [c for c in found.candidates(with_thresholds=False) if len(c) == 2]

    expected = []
    for i, first in enumerate(fields):
        for second in fields[i + 1 :]:
            held = set(zip(found.codes[first].tolist(), found.codes[second].tolist(), strict=True))
            values = [(found.levels[first][a], found.levels[second][b]) for a, b in sorted(held)]
            expected += [{first: a, second: b} for a, b in values if a and b]
    assert pairs == expected and len(pairs) > 20


def test_the_standard_error_is_liang_zeger_s_over_the_clusters_the_rows_blocks_ended_in(settings):
    """A row's cluster is the POLICY_CLUSTER_CANDLES of the learner's candles in which its block ended: the
    standard error `stats` finds by sorting the rows into clusters is the sandwich formula's over the
    clusters each row is put in one by one."""
    rows = table()
    found = Evidence(rows, ALIKE, HOUR)
    candidates = found.candidates(with_thresholds=True)
    robust = found.stats(found.masks(candidates), found.long)
    hours = {pk: 4 if timeframe == "4h" else 1 for pk, (_, timeframe) in ALIKE.items()}

    for i, conditions in enumerate(candidates):
        n_of, r_of = defaultdict(float), defaultdict(float)  # each cluster's weighted n and R
        for row in np.flatnonzero(found.mask(conditions)).tolist():
            ended = (rows.numbers[row, 1] + 1) * settings.POLICY_BLOCK_CANDLES * hours[int(rows.bot_id[row])]
            cluster = ended // settings.POLICY_CLUSTER_CANDLES
            n_of[cluster] += found.long[row] * rows.column("n")[row]
            r_of[cluster] += found.long[row] * rows.column("r_sum")[row]
        n, clusters = sum(n_of.values()), len(n_of)
        mean = sum(r_of.values()) / n
        spread = sum((r_of[g] - mean * n_of[g]) ** 2 for g in n_of)
        assert robust["clusters"][i] == clusters > 1, conditions
        assert robust["se"][i] == pytest.approx(np.sqrt(spread / n**2 * clusters / (clusters - 1)), rel=1e-9)


def test_with_nothing_in_force_edges_adopts_what_testing_every_candidate_adopts(monkeypatch):
    """While no condition is in force, `edges` sums per cluster only for the candidates whose long mean is
    above 0: what it adopts, with its q-values, and the level it selected at are what testing every
    candidate with the minimum n gives."""
    cases = [(count, seed, minimum) for count in (600, 3000) for seed in range(4) for minimum in (10, 30)]
    quick = []
    for count, seed, minimum in cases:
        found = evidence(count, seed)
        quick.append((found.edges([], minimum), found.selection_level))
    every = Evidence.spread
    monkeypatch.setattr(
        Evidence, "spread", lambda self, masks, weights, found, rows=None: every(self, masks, weights, found)
    )

    for (count, seed, minimum), ((patterns, covered, *tried), level) in zip(cases, quick, strict=True):
        found = evidence(count, seed)
        full, full_covered, *full_tried = found.edges([], minimum)
        assert (patterns, covered.tolist(), tried, level) == (
            full,
            full_covered.tolist(),
            full_tried,
            found.selection_level,
        ), (count, seed, minimum)
    assert sum(len(patterns) for (patterns, *_), _ in quick) > 5
