"""The learning benchmark's markets (bench/bench_learning.py): the same for the same seed, and planted on the
calls the replay's analyst really makes, so that its oracle and its figures are about the product's calls."""

import dataclasses
import json
from datetime import datetime

import pandas as pd
import pytest

from automation.replay import ReplaySpec, replay
from bench.bench_learning import (
    PLANTED_REGIMES,
    WARM_UP,
    check_calls,
    dump_calls,
    generate,
    replayed_calls,
    store_candles,
)
from bench.policy_offline import run

CANDLES = WARM_UP + 150  # below the replay's AHEAD_FROM slots: no worker process to start


def test_a_market_is_the_same_for_the_same_seed_and_another_for_another():
    first, again, other = (
        generate("strong", 1, CANDLES),
        generate("strong", 1, CANDLES),
        generate("strong", 2, CANDLES),
    )
    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert first.calls == again.calls
    assert not first.frame["close"].equals(other.frame["close"])
    # The plant is on the calls' conditions: in the strong market, the planted regimes follow through.
    assert first.calls and all(
        (call.weight > 0) == (call.conditions["regime"] in PLANTED_REGIMES) for call in first.calls.values()
    )


@pytest.mark.django_db
def test_the_replay_makes_the_calls_the_generator_planted_on():
    generated = generate("conjunction", 1, CANDLES)
    store_candles(generated, "CONJUNCTION1/USD")
    calls = replayed_calls(replay(ReplaySpec("sample", "CONJUNCTION1/USD", "1h")))

    checked, differing = check_calls(generated, calls)
    assert (checked, differing) == (CANDLES - WARM_UP + 1, 0)
    assert len(generated.calls) > 50

    # A market the generator did not see (one close moved by 3 % after it had called on it): the check finds
    # the calls that differ from there on.
    moved = generated.frame.copy()
    moved.iloc[WARM_UP + 50, moved.columns.get_loc("close")] *= 1.03
    moved["high"] = moved[["high", "close"]].max(axis=1)
    store_candles(dataclasses.replace(generated, frame=moved), "MOVED/USD")
    checked, differing = check_calls(
        generated, replayed_calls(replay(ReplaySpec("sample", "MOVED/USD", "1h")))
    )
    assert differing > 0


@pytest.mark.django_db
def test_the_policy_replays_alone_over_the_calls_a_replay_dumped(tmp_path):
    """bench/policy_offline.py reads what --dump wrote: every resolved BUY/SELL call with its plant, and
    the oracle it computes takes the planted-positive ones one at a time, by when each resolved."""
    generated = generate("strong", 1, CANDLES)
    store_candles(generated, "STRONG1/USD")
    records = list(replayed_calls(replay(ReplaySpec("sample", "STRONG1/USD", "1h"))).values())
    path = tmp_path / "strong-1.json"
    dump_calls(path, generated, records)
    calls = json.loads(path.read_text())
    resolved = [r for r in records if r["recommendation"] in ("BUY", "SELL") and r["outcome_r"] is not None]
    assert len(calls) == len(resolved) > 20

    oracle, busy = 0.0, None
    for call in calls:
        made = datetime.fromisoformat(call["as_of"])
        if call["weight"] and call["weight"] > 0 and (busy is None or busy <= made):
            oracle, busy = oracle + call["outcome_r"], datetime.fromisoformat(call["resolved_at"])
    result = run(path)
    assert (result["market"], result["oracle_r"]) == ("strong", round(oracle, 1))
    assert result["trades"] > 0 and result["versions"] >= 1  # the probe trades before anything is learned
