"""Stock splits in unadjusted data (issue 18): the importer names a split's line and ratio and refuses the
file, or with --adjust-splits back-adjusts the prices and volumes before it and records the split with the
market, which the replay report states. Real volatility is not taken for a split."""

import io
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from automation.evaluation import evaluate, write_report
from automation.management.commands.replay import summary
from market.importers import Bar, parse_csv_lines
from market.models import Candle, IndicatorSet, StoredMarket
from market.splits import RATIOS, find_splits
from tests.factories import EURUSD_CSV, BotFactory

START = datetime(2005, 1, 3, tzinfo=UTC)
# Adjusted daily prices of 2004-2013, copied from the backtesting package's test data (docs/architecture.md).
GOOG_CSV = EURUSD_CSV.parent / "GOOG_1d.csv"


def days(closes: list[float], volume: float = 1000.0) -> list[tuple]:
    """Daily candles closing at `closes`, each opening at the last close, except where the close moved by
    more than a third: a gap, opening at its own close (as a split or a crash opens)."""
    rows, last = [], closes[0]
    for n, close in enumerate(closes):
        opened = close if abs(math.log(close / last)) > 0.3 else last
        high, low = max(opened, close) * 1.005, min(opened, close) * 0.995
        rows.append((START + timedelta(days=n), opened, high, low, close, volume))
        last = close
    return rows


def wiggle(level: float, n: int) -> list[float]:
    """n closes around `level`, moving about 1 % a day."""
    return [level * (1 + 0.01 * math.sin(k * 1.7)) for k in range(n)]


def csv_text(rows: list[tuple]) -> str:
    lines = ["Date,Open,High,Low,Close,Volume"]
    lines += [f"{t:%Y-%m-%d},{o:.4f},{h:.4f},{lo:.4f},{c:.4f},{v:.0f}" for t, o, h, lo, c, v in rows]
    return "\n".join(lines) + "\n"


def found(rows: list[tuple]) -> list[str]:
    return [str(s) for s in find_splits(list(parse_csv_lines(csv_text(rows))))]


def import_file(tmp_path, rows, *flags, symbol="ACME/USD") -> str:
    path = tmp_path / "acme.csv"
    path.write_text(csv_text(rows))
    out = io.StringIO()
    call_command(
        "import_candles", str(path), "--exchange", "nyse", "--symbol", symbol, "--timeframe", "1d", *flags,
        stdout=out,
    )  # fmt: skip
    return out.getvalue()


# 30 days around 128, then a 2:1 split (line 32, the 31st day: 2005-02-02) and 30 days around 64.
SPLIT = days(wiggle(128.2, 30) + wiggle(64.1, 30))


def test_a_two_for_one_split_is_found_with_its_line_ratio_and_date():
    assert found(SPLIT) == ["line 32: a 2:1 split on 2005-02-02 (close 127.146 -> open 64.1)"]


def test_a_file_with_a_split_is_refused_naming_the_line_and_the_ratio(db, tmp_path):
    with pytest.raises(CommandError, match=r"line 32: a 2:1 split on 2005-02-02 .*--adjust-splits") as caught:
        import_file(tmp_path, SPLIT)
    assert "(close 127.146 -> open 64.1)" in str(caught.value)
    assert not Candle.objects.exists()
    assert not StoredMarket.objects.exists()


def test_with_adjust_splits_the_prices_before_are_halved_the_volumes_doubled_and_the_split_recorded(
    db, tmp_path
):
    IndicatorSet.objects.create(
        exchange="nyse", symbol="ACME/USD", timeframe="1d", open_time=START, candles=30, values={}
    )
    out = import_file(tmp_path, SPLIT, "--adjust-splits")

    assert "Stored 60 candles for nyse ACME/USD 1d, adjusted for 1 split(s): line 32: a 2:1 split" in out
    stored = list(Candle.objects.filter(symbol="ACME/USD").order_by("open_time"))
    for row, candle in zip(SPLIT, stored, strict=True):
        factor = 2 if candle.open_time < START + timedelta(days=30) else 1
        expected = [round(price, 4) / factor for price in row[1:5]]
        assert [candle.open, candle.high, candle.low, candle.close] == pytest.approx(expected)
        assert candle.volume == 1000 * factor
    market = StoredMarket.objects.get(exchange="nyse", symbol="ACME/USD")
    assert market.splits == [{"date": "2005-02-02", "ratio": "2:1", "line": 32, "timeframe": "1d"}]
    # Computed from the unadjusted prices: gone.
    assert not IndicatorSet.objects.exists()

    # Imported again, the same file gives the same candles and one record of the split.
    import_file(tmp_path, SPLIT, "--adjust-splits")
    assert Candle.objects.count() == 60
    assert StoredMarket.objects.get().splits == market.splits
    # Taken as real moves, the prices are stored as they are and the split is no longer recorded.
    import_file(tmp_path, SPLIT, "--no-split-check")
    assert Candle.objects.get(open_time=START).close == pytest.approx(128.2)
    assert StoredMarket.objects.get().splits == []


def test_candles_stored_before_the_file_are_rescaled_once_and_back_when_the_move_is_kept(db, tmp_path):
    import_file(tmp_path, SPLIT[:10])  # ten days before the split, from an earlier file
    later = SPLIT[10:]

    out = import_file(tmp_path, later, "--adjust-splits")
    assert "line 22: a 2:1 split on 2005-02-02" in out
    assert "the 10 candles stored before the file rescaled to match" in out
    first = Candle.objects.get(open_time=START)
    assert (first.close, first.volume) == (pytest.approx(SPLIT[0][4] / 2, rel=1e-6), 2000)

    # Imported again: the split is recorded, so the earlier candles are not halved a second time.
    assert "rescaled" not in import_file(tmp_path, later, "--adjust-splits")
    assert Candle.objects.get(open_time=START).close == pytest.approx(SPLIT[0][4] / 2, rel=1e-6)

    # Told the move is real: the earlier candles are as they were, and nothing is recorded.
    assert "the 10 candles stored before the file rescaled" in import_file(
        tmp_path, later, "--no-split-check"
    )
    assert Candle.objects.get(open_time=START).close == pytest.approx(SPLIT[0][4], rel=1e-6)
    assert StoredMarket.objects.get().splits == []


def test_data_already_adjusted_across_a_recorded_split_keeps_the_record(db, tmp_path):
    import_file(tmp_path, SPLIT, "--adjust-splits")
    adjusted = [(t, *(p / 2 for p in prices), v * 2) for t, *prices, v in SPLIT[:30]] + SPLIT[30:]

    out = import_file(tmp_path, adjusted)

    assert "rescaled" not in out and "split" not in out
    assert StoredMarket.objects.get().splits[0]["date"] == "2005-02-02"
    assert Candle.objects.get(open_time=START).close == pytest.approx(SPLIT[0][4] / 2, rel=1e-6)


def test_a_reverse_split_is_found_and_adjusted(db, tmp_path):
    # 1:10: a penny stock at 0.52 trades at 5.20 the next day and stays there.
    rows = days(wiggle(0.52, 20) + wiggle(5.2, 20))
    assert found(rows) == ["line 22: a 1:10 split on 2005-01-23 (close 0.524 -> open 5.2)"]

    import_file(tmp_path, rows, "--adjust-splits")
    first = Candle.objects.order_by("open_time").first()
    assert (first.close, first.volume) == (pytest.approx(5.2), pytest.approx(100))
    assert StoredMarket.objects.get().splits[0]["ratio"] == "1:10"


@pytest.mark.parametrize(
    "closes",
    [
        # A 50 % crash that partly recovers over the next days.
        [*wiggle(100, 30), 50, 56, 61, 66, 70, 72, *wiggle(72, 20)],
        # A bad tick: half the price for one day, then back.
        [*wiggle(100, 30), 50, *wiggle(100, 20)],
        # A spike to double the price, then back to where it was: the level "after" was there before.
        [*wiggle(100, 30), 200, *wiggle(100, 20)],
        # Falling by a third and more over three days: no single move is a split's.
        [*wiggle(100, 30), 85, 72, 62, 50, *wiggle(50, 20)],
    ],
    ids=["crash-that-recovers", "bad-tick", "spike", "slide"],
)
def test_real_moves_are_not_splits(closes, db, tmp_path):
    rows = days(closes)
    assert found(rows) == []
    assert "Stored" in import_file(tmp_path, rows)


def test_the_shipped_eurusd_hours_have_no_split():
    assert find_splits(list(parse_csv_lines(EURUSD_CSV.read_text()))) == []


def test_googles_adjusted_daily_prices_have_no_split_and_one_put_in_is_found():
    lines = list(parse_csv_lines(GOOG_CSV.read_text()))
    assert find_splits(lines) == []
    # The same data unadjusted for a 2:1 split on its 1000th day.
    cut = lines[1000][1].open_time
    unadjusted = [(n, bar if bar.open_time < cut else _divided(bar, 2)) for n, bar in lines]
    [split] = find_splits(unadjusted)
    assert (split.line, split.ratio_text) == (lines[1000][0], "2:1")


def test_the_replay_report_states_the_splits_the_data_was_adjusted_for(db, tmp_path):
    import_file(tmp_path, SPLIT, "--adjust-splits")
    bot = BotFactory(exchange="nyse", symbol="ACME/USD", timeframe="1d")
    figures = evaluate(bot)
    assert figures["splits"] == [{"date": "2005-02-02", "ratio": "2:1", "line": 32, "timeframe": "1d"}]
    assert "  candles adjusted for splits: 2:1 on 2005-02-02" in summary(figures).splitlines()
    html = write_report(figures, tmp_path / "report").read_text()
    assert "back-adjusted on import for the splits 2:1 on 2005-02-02" in html
    other = BotFactory(exchange="nyse", symbol="ACME/USD", timeframe="1h")
    assert evaluate(other)["splits"] == []
    assert "splits" not in summary(evaluate(other))


def _divided(bar, ratio):
    return replace(
        bar, open=bar.open / ratio, high=bar.high / ratio, low=bar.low / ratio, close=bar.close / ratio
    )


def walk(seed: int, sigma: float, n: int = 250) -> list[Bar]:
    """A random walk of daily candles from 100, each close `sigma` (log) from the last, opening at it."""
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, sigma, n)))
    opens = np.concatenate([[100], closes[:-1]])
    return [
        Bar(START + timedelta(days=k), o, max(o, c), min(o, c), c, 1000.0)
        for k, (o, c) in enumerate(zip(opens, closes, strict=True))
    ]


@pytest.mark.parametrize("sigma", [0.005, 0.01, 0.02, 0.04])
def test_random_walks_have_no_splits(sigma):
    for seed in range(20):
        assert find_splits(list(enumerate(walk(seed, sigma), start=2))) == [], seed


@pytest.mark.parametrize("ratio", RATIOS, ids=str)
def test_every_ratio_put_into_a_random_walk_is_found(ratio):
    for seed in range(10):
        bars = walk(seed, 0.01)
        at = 20 + 20 * seed
        split = [bar if k < at else _divided(bar, float(ratio)) for k, bar in enumerate(bars)]
        [found] = find_splits(list(enumerate(split, start=2)))
        assert (found.line, found.ratio) == (at + 2, ratio), seed
