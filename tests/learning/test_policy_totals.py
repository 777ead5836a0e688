"""The policy's counters as a table (learning.policy.PolicyTotals, CounterTable): kept up to date by adding
resolutions, as a replay's books do, they are the table read from the summed rows, as the database's ledger
reads PolicyCounter; what the evidence makes of them is what it makes of a table read afresh."""

import random
from datetime import timedelta

import numpy as np

from learning.counters import POLICY_SUMS
from learning.policy import POLICY_ROW, Evidence, PolicyTotals, pool

HOUR = timedelta(hours=1)
ALIKE = {1: ("EUR/USD", "1h"), 2: ("BTC/USDT", "4h")}


def resolutions(count: int, seed: int = 7) -> list[tuple[tuple, tuple]]:
    """(key, sums) as learning.counters.policy_row gives them for a call, over a few keys."""
    draw = random.Random(seed)  # noqa: S311 - a seeded sample, not a secret
    found = []
    for _ in range(count):
        key = (
            draw.choice([1, 2]),
            draw.choice([55, 70, 85]),
            draw.choice(["TREND_LOW_VOL", "RANGE_HIGH_VOL"]),
            draw.choice(["BULLISH", "BEARISH", ""]),
            draw.choice(["<30", "30-70"]),
            draw.randrange(3),
        )
        r = draw.uniform(-1.5, 2.5) if key[0] == 1 else draw.uniform(-1.5, 0.0)  # the second bot's lose
        found.append(
            (key, (1, r, r * r, int(r > 0), max(r, 0.0), int(r < 0), min(r, 0.0), draw.uniform(1, 9)))
        )
    return found


def summed_rows(added: list[tuple[tuple, tuple]]) -> list[dict]:
    """The rows the database would hold: each key's sums added in Python, in the order keys first came."""
    rows = {}
    for key, sums in added:
        row = rows.setdefault(
            key, {**dict(zip(POLICY_ROW, key, strict=True)), **dict.fromkeys(POLICY_SUMS, 0)}
        )
        for name, value in zip(POLICY_SUMS, sums, strict=True):
            row[name] += value
    return list(rows.values())


def as_rows(table) -> list[tuple]:
    return [
        (
            int(table.bot_id[i]),
            *[
                table.values[name][table.codes[name][i]]
                for name in ("regime", "market_sentiment", "rsi_band")
            ],
            *table.numbers[i].tolist(),
        )
        for i in range(len(table))
    ]


def test_totals_kept_by_adding_are_the_rows_read_back_bit_for_bit():
    added = resolutions(300)
    totals = PolicyTotals()
    for key, sums in added:
        totals.add(key, sums)
    rows = summed_rows(added)

    kept, read = totals.table(), PolicyTotals(rows).table()

    assert len(kept) == len(rows) > 16  # grown past its first room
    assert as_rows(kept) == as_rows(read)  # the same rows, in the same order, to the last bit
    assert kept.calls() == 300 and isinstance(kept.calls(), int)


def test_a_table_taken_is_not_moved_by_later_resolutions():
    added = resolutions(50)
    totals = PolicyTotals(summed_rows(added[:40]))
    before = totals.table()
    kept = as_rows(before)

    new = ((1, 90, "TREND_HIGH_VOL", "BULLISH", ">70", 9), (1, 1.0, 1.0, 1, 1.0, 0, 0.0, 2.0))
    for key, sums in [*added[40:], new]:
        totals.add(key, sums)

    assert as_rows(before) == kept
    expected = [
        *as_rows(PolicyTotals(summed_rows(added)).table()),
        (1, "TREND_HIGH_VOL", "BULLISH", ">70", 90.0, 9.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 2.0),
    ]
    assert as_rows(totals.table()) == expected


def test_the_evidence_of_one_bot_s_rows_is_that_of_its_rows_alone():
    """Kept apart from the other bot (its calls lose), a bot's rows keep codes into every value the table has
    seen; the evidence knows only the values its rows hold, in order, as from a table of those rows alone."""
    added = resolutions(400)
    table = PolicyTotals(summed_rows(added)).table()
    alone = PolicyTotals(summed_rows([(key, sums) for key, sums in added if key[0] == 2])).table()
    bot = type("Bot", (), {"pk": 2})

    rows, bot_ids, pooling = pool(bot, [1, 2], table, 30)
    assert pooling["source"] == "own" and bot_ids == [2] and len(rows) == len(alone) < len(table)

    found, fresh = Evidence(rows, ALIKE, HOUR), Evidence(alone, ALIKE, HOUR)
    assert found.levels == fresh.levels and found.levels["symbol"] == ["BTC/USDT"]
    for name in found.codes:
        assert found.codes[name].tolist() == fresh.codes[name].tolist(), name
    assert found.candidates(with_thresholds=True) == fresh.candidates(with_thresholds=True)
    every = np.ones(len(rows), bool)
    assert found.summary(every) == fresh.summary(every)
