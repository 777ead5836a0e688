"""The learning benchmark's markets (bench/bench_learning.py): the same for the same seed, and planted on the
calls the replay's analyst really makes, so that its oracle and its figures are about the product's calls."""

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import numpy as np
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
from bench.policy_ceiling import ceiling, t_of
from bench.policy_offline import constants, run

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


def _calls(outcomes: list[float], planted: list[bool]) -> list[dict]:
    """One call every 10 hours, each resolved 5 hours after it was made."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        {
            "as_of": (start + timedelta(hours=10 * i)).isoformat(),
            "resolved_at": (start + timedelta(hours=10 * i + 5)).isoformat(),
            "outcome_r": r,
            "weight": 1.0 if inside else 0.0,
        }
        for i, (r, inside) in enumerate(zip(outcomes, planted, strict=True))
    ]


def test_the_ceiling_t_is_the_textbook_one_when_every_call_is_its_own_cluster():
    r = np.array([1.0, -1.0, 2.0, 0.5, -0.5, 1.5])
    t, clusters = t_of(r, np.arange(len(r)))
    assert clusters == 6 and t == pytest.approx(r.mean() / (r.std(ddof=1) / np.sqrt(6)))


def test_the_ceiling_of_an_edge_trades_it_once_its_evidence_clears_the_bar_and_of_noise_never():
    rng = np.random.default_rng(3)
    planted = [i % 2 == 0 for i in range(800)]
    edge = ceiling(_calls(list(rng.normal(0.8, 1.0, 800)), planted), alpha=0.05, candidates=60)
    # One test is passed as soon as MIN_SAMPLES planted calls resolved; the first of 60 needs a few more.
    assert edge["one test: from trade"] == 30 < edge["BH first: from trade"] < 60
    assert 0.85 < edge["BH first: capture"] < 1 and edge["t"] > 10
    noise = ceiling(_calls(list(rng.normal(0.0, 1.0, 800)), planted), alpha=0.05, candidates=60)
    assert noise["BH first: from trade"] is None and noise["BH first: capture"] == 0.0


def test_the_offline_policy_takes_only_the_policys_own_constants():
    assert constants(["DROP_Z=1.0", "MAX_PATTERNS=2"]) == {"DROP_Z": 1.0, "MAX_PATTERNS": 2}
    with pytest.raises(SystemExit, match="DROPZ is not a constant"):
        constants(["DROPZ=1.0"])
