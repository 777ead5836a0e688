"""The learning benchmark: does the adaptive policy find an edge that is there, and leave alone one that is
not? Synthetic hourly markets whose edge is planted relative to the product's own technical analyst, each
replayed through the whole loop (automation.replay, the product's default settings: the technical analyst,
full learning, the outcome model on), against an oracle that trades exactly the planted-positive calls.

Run: .venv/bin/python -m bench.bench_learning [--quick] [--markets strong,noise] [--seeds 3] [--candles 5000]
[--json PATH] [--dump DIR] (or `make bench`). --dump writes each replay's resolved calls, which
bench/policy_offline.py replays the policy alone over and bench/policy_evidence.py follows a condition in.
--quick: one seed of 2,000 candles. Each (market, seed) replays in a child process of its own (its own
temporary directory and SQLite database), two at a time.

The markets. A geometric random walk (sigma per hour, OHLC from SUB_STEPS sub-steps, random volume) whose
first WARM_UP candles are plain, so that EMA 200 is defined. After that, at each candle's close the generator
runs the analyst exactly as the replay will (automation.analysis.LOOKBACK candles up to the last closed one,
market.indicators.compute, automation.analysts.technical.analyse_indicators); a BUY or SELL call sets the
drift of the next candles (the call's horizon, until the next call replaces it) to mu * sigma * direction *
weight, where weight is the market's plant (planted_weight) over the call's conditions
(learning.conditions' fields). Each child checks that every call the replay recorded after the warm-up is the
generator's, at the same slot with the same recommendation, regime, sentiment and confidence.

- strong, weak: calls in PLANTED_REGIMES follow through (weight 1), others have no drift; mu is set for an
  oracle's mean of about +0.6 R and +0.2 R a trade net of costs (ORACLE_AIM; printed beside the oracle's).
- confidence: calls with a stated confidence of at least CONFIDENCE_FLOOR (80) follow through. 80, not 75:
  the adaptation it counts as correct is a threshold of at least the floor - 5, and 70 is the bot's default.
- conjunction: CONJUNCTION's A∧B (sentiment BULLISH and regime RANGE_HIGH_VOL) follows through; A∧¬B and
  ¬A∧B reverse (weights -REVERSE_A, -REVERSE_B), ¬A∧¬B has no drift. Not RSI band and sentiment: for this
  analyst both are the call's direction (a BUY is BULLISH and has an RSI of 50-70), so two of their cells
  stay nearly empty. The cells' counts and mean outcome_r print, and A's and B's alone (both at or below 0 R).
- flip: strong, reversed from the middle candle on (planted-positive before, planted-negative after).
- wrong: every call reverses. noise, noise2: no drift at all (noise2 at a higher volatility).

What it prints per market (means over seeds; each seed's in --json):
- oracle: the planted-positive calls (weight > 0; in flip, before the flip) taken one at a time like the bot
  (max_open_trades 1: a call is taken only if no taken call is unresolved when it is made, its
  market_conditions["as_of"] against the taken one's resolved_at), summing the outcome_r the replay resolved
  them with: total R, trades, mean R per trade. The oracle's mean R is the check on the plant's size.
- adaptive: the outcome_r of the analyses of the bot's closed trades: total R, trades, mean; capture =
  adaptive R ÷ oracle R (both unsized sums; only where the oracle's R is positive).
- first adaptation (not on the controls): the resolved BUY/SELL calls before the first policy kept (a new
  version, or the latest updated in place) holding a "trade" pattern inside the planted-positive set (for
  confidence: also a learned min_confidence ≥ CONFIDENCE_FLOOR - 5; for flip: kept before the flip), or
  "never". Counted as the policy is kept, by watching the replay's books (automation.replay_book.Book's
  cycle, settle and keep_policy); without those hooks, from the stored versions' data windows.
- spurious: the distinct patterns ever learned (over every version, and each version's in-place updates)
  that contradict the plant: a "trade" pattern not inside the planted-positive set (it neither names the
  plant's condition or a narrower one, nor are INSIDE_SHARE of the generated calls it matches
  planted-positive); an "avoid" pattern that matches a planted-positive generated call (in flip, only those
  learned before the flip). See Judge. On wrong no call is planted-positive: every "trade" pattern is
  spurious, no "avoid" pattern is; on noise and noise2 every pattern is spurious. The old policy's
  avoid-conditions are "avoid" patterns of one condition. Rate = spurious ÷ candidates tried (the policy's
  sample_sizes["candidates"] when present, else the old policy's avoidable conditions: regimes + sentiments).
- policy versions per 1,000 cycles: LearnedPolicy rows ÷ cycle runs x 1,000.
- the outcome model: models trained, the last one's out-of-sample AUC, whether one was ever active, and the
  calls it refused: decided against by its verdict (the decision's reason is the gate's; a verdict against a
  call that another rule had already refused, as a size of 0 does, refuses nothing).
- the paper account's result: closed trades' P&L ÷ starting balance, in %.
- flip: the cycles from the flip to the last trade on a call of the dead condition (planted-negative), 0 if
  none.
- the check of the plant: the slots where the replay's call differs from the generator's (0 expected), and
  each seed's failed cycles with the first error (a replay whose learning step fails looks like a bot that
  learned nothing).

Targets (the done-when of the learning work): strong capture ≥ 0.7, weak ≥ 0.4; conjunction: its pattern
found (a first adaptation) and capture ≥ 0.5; flip ≤ 500 cycles; controls (noise, noise2, wrong): loss ≤ 0.5 %
of equity each, spurious ≤ 5 % of (seed x candidate) cases, the outcome model never gates; every market ≤ 20
policy versions per 1,000 cycles."""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent

# --- the markets --------------------------------------------------------------------------------------------
START = datetime(2024, 1, 1, tzinfo=UTC)
WARM_UP = 300  # plain random-walk candles first, so that EMA 200 is defined before anything is planted
SUB_STEPS = 6  # price steps per candle, for its high and low
PLANTED_REGIMES = ("TREND_HIGH_VOL", "RANGE_LOW_VOL")
CONFIDENCE_FLOOR = 80
CONJUNCTION = ({"market_sentiment": "BULLISH"}, {"regime": "RANGE_HIGH_VOL"})
# How much the two half-cells reverse, relative to A∧B's follow-through, so that neither A alone nor B alone
# earns anything net of costs. In 5,000 candles A∧B has about 580 calls, A∧¬B 1,400 and ¬A∧B 290; a reversal
# loses at most about 1 R (the stop), so the small ¬A∧B cell cannot offset a large follow-through: the
# conjunction's mu is kept moderate (its planted calls resolve near +0.4 R).
REVERSE_A, REVERSE_B = 0.25, 1.2
INSIDE_SHARE = 0.95  # of a "trade" pattern's calls planted-positive, for it to lie inside the plant (Judge)
ORACLE_AIM = {"strong": 0.6, "weak": 0.2}  # the oracle's mean R per trade the plants are set for
CONTROLS = ("noise", "noise2", "wrong")
REGIMES, SENTIMENTS = 5, 3  # what the old policy could avoid: its candidates


@dataclass(frozen=True)
class Plant:
    drift: float  # mu: the per-candle drift along a planted call, in units of sigma
    sigma: float = 0.007  # the log price's volatility per hour


MARKETS = {
    "strong": Plant(0.31),
    "weak": Plant(0.15),
    "confidence": Plant(0.3),
    "conjunction": Plant(0.35),
    "flip": Plant(0.31),
    "wrong": Plant(0.31),
    "noise": Plant(0.0),
    "noise2": Plant(0.0, sigma=0.012),
}


def planted_weight(market: str, conditions: dict, index: int, total: int) -> float:
    """The drift a call with `conditions`, made at candle `index` of `total`, gets in units of mu * sigma
    along the call: positive where it follows through, negative where it reverses, 0 where the price ignores
    it."""
    if market in ("strong", "weak"):
        return float(conditions["regime"] in PLANTED_REGIMES)
    if market == "flip":
        inside = float(conditions["regime"] in PLANTED_REGIMES)
        return inside if index < total // 2 else -inside
    if market == "confidence":
        return float(conditions["confidence"] >= CONFIDENCE_FLOOR)
    if market == "conjunction":
        a, b = conjunction_cell(conditions)
        return 1.0 if a and b else -REVERSE_A if a else -REVERSE_B if b else 0.0
    if market == "wrong":
        return -1.0
    return 0.0


def conjunction_cell(conditions: dict) -> tuple[bool, bool]:
    return tuple(all(conditions.get(k) == v for k, v in part.items()) for part in CONJUNCTION)


@dataclass(frozen=True)
class Call:
    index: int  # the candle it was made at the close of
    recommendation: str
    conditions: dict  # learning.conditions' fields, and "confidence"
    weight: float


@dataclass(frozen=True)
class Generated:
    frame: pd.DataFrame  # open, high, low, close, volume by open time
    calls: dict[str, Call]  # the BUY/SELL calls after the warm-up, by as_of (ISO)


def generate(market: str, seed: int, candles: int) -> Generated:
    """The market's candles and the analyst's calls on them, the same for the same (market, seed, candles)."""
    from automation.analysis import LOOKBACK
    from automation.analysts.technical import analyse_indicators
    from learning.conditions import confidence_band, rsi_band
    from market.indicators import compute

    plant = MARKETS[market]
    rng = np.random.default_rng([zlib.crc32(market.encode()), seed])
    step_sigma = plant.sigma / math.sqrt(SUB_STEPS)
    ohlc = np.empty((candles, 4))
    volume = rng.lognormal(6.0, 0.4, candles)
    index = pd.date_range(START, periods=candles, freq="1h")
    price, drift, left = 100.0, 0.0, 0
    calls = {}
    for t in range(candles):
        steps = (drift if left > 0 else 0.0) / SUB_STEPS + step_sigma * rng.standard_normal(SUB_STEPS)
        left -= 1
        path = price * np.exp(np.cumsum(steps))
        ohlc[t] = price, max(price, path.max()), min(price, path.min()), path[-1]
        price = path[-1]
        if t + 1 < WARM_UP:
            continue
        lo = max(0, t + 1 - LOOKBACK)
        window = pd.DataFrame(
            ohlc[lo : t + 1], index=index[lo : t + 1], columns=["open", "high", "low", "close"]
        )
        window["volume"] = volume[lo : t + 1]
        indicators = compute(window)
        analysis = analyse_indicators(indicators)
        if analysis.recommendation == "HOLD":
            continue
        conditions = {
            "regime": indicators.regime,
            "market_sentiment": analysis.market_sentiment,
            "rsi_band": rsi_band(indicators.rsi),
            "confidence_band": confidence_band(analysis.confidence),
            "confidence": analysis.confidence,
        }
        weight = planted_weight(market, conditions, t, candles)
        direction = 1 if analysis.recommendation == "BUY" else -1
        drift, left = plant.drift * plant.sigma * direction * weight, analysis.horizon
        calls[(index[t] + pd.Timedelta(hours=1)).isoformat()] = Call(
            t, analysis.recommendation, conditions, weight
        )
    frame = pd.DataFrame(ohlc, index=index, columns=["open", "high", "low", "close"])
    frame["volume"] = volume
    return Generated(frame, calls)


# --- what a pattern means for the plant ---------------------------------------------------------------------
def patterns_of(policy) -> list[tuple[str, dict]]:
    """(action, conditions) of a LearnedPolicy, in the new format (`patterns`) or the old one (its
    avoid-conditions, each an "avoid" of one condition)."""
    found = [
        (p.get("action", ""), dict(p.get("conditions") or {}))
        for p in (getattr(policy, "patterns", None) or [])
        if isinstance(p, dict)
    ]
    for c in getattr(policy, "avoid_conditions", None) or []:
        if isinstance(c, dict) and "field" in c:
            found.append(("avoid", {c["field"]: c["value"]}))
    return found


def _band_floor(band: str) -> float:
    return {"<60": 0, "60-70": 60, "70-80": 70, ">=80": 80}.get(band, 0)


def planted_positive(market: str, conditions: dict) -> bool:
    """Whether a call with `conditions` follows through under the market's plant (flip's before the flip)."""
    return planted_weight("strong" if market == "flip" else market, conditions, 0, 1) > 0


def inside_by_definition(market: str, conditions: dict) -> bool:
    """Whether `conditions` name the plant's own condition, or a narrower one."""
    if market in ("strong", "weak", "flip"):
        return conditions.get("regime") in PLANTED_REGIMES
    if market == "confidence":
        floor = max(conditions.get("min_confidence") or 0, _band_floor(conditions.get("confidence_band", "")))
        return floor >= CONFIDENCE_FLOOR - 5
    if market == "conjunction":
        return all(conditions.get(k) == v for part in CONJUNCTION for k, v in part.items())
    return False


@dataclass(frozen=True)
class Judge:
    """What a learned pattern means for the plant of one generated market. A "trade" pattern lies inside the
    planted-positive set when it names the plant's condition or a narrower one, or when at least
    INSIDE_SHARE of the generated calls it matches are planted-positive (for this analyst "RSI 50-70" is
    all but "BULLISH"); an "avoid" pattern overlaps it when it matches a planted-positive call."""

    market: str
    calls: tuple[tuple[dict, bool], ...]  # each generated call's conditions, and whether planted-positive

    @classmethod
    def of(cls, market: str, generated: Generated, symbol: str) -> "Judge":
        return cls(
            market,
            tuple(
                (
                    {**c.conditions, "symbol": symbol, "timeframe": "1h"},
                    planted_positive(market, c.conditions),
                )
                for c in generated.calls.values()
            ),
        )

    def inside(self, conditions: dict) -> bool:
        from learning.conditions import matches

        if inside_by_definition(self.market, conditions):
            return True
        hits = [positive for call, positive in self.calls if matches(call, conditions)]
        return bool(hits) and sum(hits) >= INSIDE_SHARE * len(hits)

    def overlaps(self, conditions: dict) -> bool:
        from learning.conditions import matches

        return any(positive and matches(call, conditions) for call, positive in self.calls)

    def spurious(self, action: str, conditions: dict, before_flip: bool) -> bool:
        if self.market in ("noise", "noise2"):
            return True
        if action == "trade":
            return not self.inside(conditions)
        if action == "avoid":
            return self.overlaps(conditions) and (self.market != "flip" or before_flip)
        return False


# --- one (market, seed), in a child process -----------------------------------------------------------------
def child(market: str, seed: int, candles: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command

    import automation.replay as replay_module
    from automation.models import CycleRun
    from automation.replay import ReplaySpec, replay
    from learning.models import LearnedPolicy, TrainedModel
    from trades.models import Trade

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    generated = generate(market, seed, candles)
    generating = time.perf_counter() - started
    symbol = f"{market.upper()}{seed}/USD"
    store_candles(generated, symbol)
    flip_index = candles // 2
    kept = _watch_policies(replay_module)
    started = time.perf_counter()
    bot = replay(ReplaySpec("sample", symbol, "1h"))
    replaying = time.perf_counter() - started

    by_as_of = replayed_calls(bot)
    records = list(by_as_of.values())
    checked, mismatched = check_calls(generated, by_as_of)

    # The oracle: the planted-positive calls, one at a time.
    planted = sorted(
        (r for a, r in by_as_of.items() if a in generated.calls and generated.calls[a].weight > 0),
        key=lambda r: r["market_conditions"]["as_of"],
    )
    oracle, busy_until = [], None
    for r in planted:
        if r["outcome_r"] is None or r["resolved_at"] is None:
            continue
        made = datetime.fromisoformat(r["market_conditions"]["as_of"])
        if busy_until is None or busy_until <= made:
            oracle.append(r["outcome_r"])
            busy_until = r["resolved_at"]

    closed = list(Trade.objects.filter(bot=bot, status=Trade.Status.CLOSED).values("analysis_id", "pnl"))
    closed_ids = {t["analysis_id"] for t in closed}
    traded_ids = set(Trade.objects.filter(bot=bot).values_list("analysis_id", flat=True))
    adaptive = [r["outcome_r"] for r in records if r["pk"] in closed_ids and r["outcome_r"] is not None]
    pnl = float(sum(t["pnl"] for t in closed)) if closed else 0.0

    # Patterns: each keep watched in the books, and the stored rows (whatever the watch missed).
    versions = list(LearnedPolicy.objects.filter(bot=bot).order_by("created_at", "pk"))
    history = kept or [
        {"new": True, "resolved": None, "index": None, "patterns": patterns_of(p), "policy": p}
        for p in versions
    ]
    judge = Judge.of(market, generated, symbol)
    seen: dict[tuple, bool] = {}
    first_correct = None
    candidates = REGIMES + SENTIMENTS
    for entry in history:
        before_flip = entry["index"] is None or entry["index"] < flip_index
        for action, conditions in entry["patterns"]:
            key = (action, tuple(sorted(conditions.items())))
            seen[key] = seen.get(key, False) or judge.spurious(action, conditions, before_flip)
        correct = any(a == "trade" and judge.inside(c) for a, c in entry["patterns"])
        if (
            market == "confidence"
            and entry.get("learned")
            and (entry.get("min_confidence") or 0) >= (CONFIDENCE_FLOOR - 5)
        ):
            correct = True
        if correct and first_correct is None and market not in CONTROLS and (market != "flip" or before_flip):
            first_correct = entry["resolved"]
            if first_correct is None:  # not watched: the calls resolved by the version's data window
                to = entry["policy"].data_to
                first_correct = sum(
                    1
                    for r in records
                    if r["recommendation"] in ("BUY", "SELL")
                    and r["outcome_r"] is not None
                    and r["resolved_at"] <= to
                )
        candidates = max(candidates, entry.get("candidates") or 0)
    for p in versions:
        for action, conditions in patterns_of(p):
            key = (action, tuple(sorted(conditions.items())))
            seen.setdefault(key, judge.spurious(action, conditions, True))

    models = list(TrainedModel.objects.filter(user=bot.owner).order_by("created_at", "pk"))
    reasons = [r["feedback_data"].get("decision", {}).get("reason", "") for r in records]
    cycles = CycleRun.objects.filter(bot=bot).count()
    failed = CycleRun.objects.filter(bot=bot, status=CycleRun.Status.FAILED)
    first_failure = failed.order_by("slot").values_list("error", flat=True).first()

    traded_calls = [
        generated.calls.get(r["market_conditions"]["as_of"]) for r in records if r["pk"] in traded_ids
    ]
    dead = [c.index - flip_index for c in traded_calls if c and c.weight < 0 and c.index >= flip_index]
    on_plant = sum(1 for c in traded_calls if c and c.weight > 0)
    cells = conjunction_cells(generated, by_as_of) if market == "conjunction" else None
    if os.environ.get("BENCH_LEARNING_DUMP"):
        dump_calls(Path(os.environ["BENCH_LEARNING_DUMP"]) / f"{market}-{seed}.json", generated, records)
    return {
        "market": market,
        "seed": seed,
        "candles": candles,
        "seconds": {"generate": round(generating, 1), "replay": round(replaying, 1)},
        "calls_checked": checked,
        "calls_mismatched": mismatched,
        "planted_calls": len(planted),
        "oracle": {"r": sum(oracle), "trades": len(oracle)},
        "adaptive": {"r": sum(adaptive), "trades": len(adaptive)},
        "traded": len(traded_ids),
        "traded_on_plant": on_plant,
        "first_correct": first_correct,
        "spurious": sum(seen.values()),
        "learned": len(seen),
        "spurious_patterns": [f"{a} {dict(c)}" for (a, c), bad in seen.items() if bad][:20],
        "candidates": candidates,
        "cycles": cycles,
        "failed_cycles": failed.count(),
        "first_failure": first_failure,
        "versions": len(versions),
        "models": len(models),
        "last_auc": (models[-1].metrics or {}).get("auc") if models else None,
        # A verdict is kept only while a model is active (learning.ml.verdict).
        "model_active": any(r["feedback_data"].get("ml_gate") for r in records)
        or any(m.is_active for m in models),
        "gated": sum(reason.startswith("the outcome model") for reason in reasons),
        "pnl_pct": pnl / float(bot.starting_balance) * 100,
        "flip_cycles": max(dead, default=0) if market == "flip" else None,
        "cells": cells,
    }


def conjunction_cells(generated: Generated, by_as_of: dict) -> dict[str, list]:
    """Per cell of CONJUNCTION, and for A and B alone: [calls, sum of their outcome_r, calls resolved]."""
    cells = {name: [0, 0.0, 0] for name in ("A∧B", "A∧¬B", "¬A∧B", "¬A∧¬B", "A", "B")}
    for as_of, call in generated.calls.items():
        a, b = conjunction_cell(call.conditions)
        r = (by_as_of.get(as_of) or {}).get("outcome_r")
        names = [("A" if a else "¬A") + "∧" + ("B" if b else "¬B")] + ["A"] * a + ["B"] * b
        for name in names:
            cell = cells[name]
            cell[0] += 1
            if r is not None:
                cell[1] += r
                cell[2] += 1
    return cells


def dump_calls(path: Path, generated: Generated, records: list[dict]) -> None:
    """The replay's resolved BUY/SELL calls with their plant, for studying the policy away from the replay
    (`--dump DIR`): what learning.policy learns from, call by call."""
    calls = [
        {
            "as_of": r["market_conditions"]["as_of"],
            "resolved_at": r["resolved_at"].isoformat(),
            "recommendation": r["recommendation"],
            "regime": r["regime"],
            "market_sentiment": r["market_sentiment"],
            "rsi": r["market_conditions"].get("rsi"),
            "confidence": r["confidence_score"],
            "outcome_r": r["outcome_r"],
            "weight": getattr(generated.calls.get(r["market_conditions"]["as_of"]), "weight", None),
        }
        for r in records
        if r["recommendation"] in ("BUY", "SELL") and r["outcome_r"] is not None and r["resolved_at"]
    ]
    path.write_text(json.dumps(sorted(calls, key=lambda c: c["as_of"])))


def store_candles(generated: Generated, symbol: str) -> None:
    from market.models import Candle

    Candle.objects.bulk_create(
        [
            Candle(exchange="sample", symbol=symbol, timeframe="1h", open_time=t.to_pydatetime(), **row)
            for t, row in zip(generated.frame.index, generated.frame.to_dict("records"), strict=True)
        ],
        batch_size=1000,
    )


def replayed_calls(bot) -> dict[str, dict]:
    """The bot's recorded analyses, as the benchmark reads them, by as_of (ISO)."""
    from learning.models import AILearningData

    rows = AILearningData.objects.filter(bot=bot).values(
        "pk", "recommendation", "regime", "market_sentiment", "confidence_score", "market_conditions",
        "outcome_r", "resolved_at", "feedback_data",
    )  # fmt: skip
    return {r["market_conditions"]["as_of"]: r for r in rows}


def check_calls(generated: Generated, by_as_of: dict) -> tuple[int, int]:
    """(slots compared, slots whose calls differ): every slot after the warm-up, the replay's call against
    the generator's (a HOLD is the absence of a generated call)."""
    first = (generated.frame.index[WARM_UP - 1] + pd.Timedelta(hours=1)).isoformat()
    checked = mismatched = 0
    for as_of, record in by_as_of.items():
        if as_of < first:
            continue
        checked += 1
        call = generated.calls.get(as_of)
        if call is None:
            mismatched += record["recommendation"] != "HOLD"
            continue
        seen = (
            record["recommendation"],
            record["regime"],
            record["market_sentiment"],
            record["confidence_score"],
        )
        made = (call.recommendation, call.conditions["regime"], call.conditions["market_sentiment"])
        mismatched += seen != (*made, call.conditions["confidence"])
    replayed = {a for a in by_as_of if a >= first}
    mismatched += sum(1 for a in generated.calls if a not in replayed)
    return checked, mismatched


def _watch_policies(replay_module) -> list[dict]:
    """Each policy the replay's books keep (a new version or the latest updated in place), with the resolved
    BUY/SELL calls so far and the candle it was kept at: what the stored rows cannot say afterwards (the
    latest version's window and avoid-conditions are updated in place). Empty if the books have no such
    hooks (then the stored rows are read instead)."""
    book = getattr(replay_module, "Book", None)
    kept: list[dict] = []
    if book is None or not all(hasattr(book, name) for name in ("cycle", "settle", "keep_policy")):
        return kept

    class Watched(book):
        resolved_calls, candle = 0, None

        def cycle(self, slot):
            self.candle = int((slot - START) / timedelta(hours=1)) - 1
            return super().cycle(slot)

        def settle(self, analysis, fields):
            settled = super().settle(analysis, fields)
            if settled and analysis.recommendation in ("BUY", "SELL") and analysis.outcome_r is not None:
                self.resolved_calls += 1
            return settled

        def keep_policy(self, policy, new, *args, **kwargs):
            kept.append(
                {
                    "new": new,
                    "resolved": self.resolved_calls,
                    "index": self.candle,
                    "patterns": patterns_of(policy),
                    "learned": bool((policy.sample_sizes or {}).get("learned")),
                    "min_confidence": policy.min_confidence,
                    "candidates": _candidates(policy),
                }
            )
            return super().keep_policy(policy, new, *args, **kwargs)

    replay_module.Book = Watched
    return kept


def _candidates(policy) -> int | None:
    value = (policy.sample_sizes or {}).get("candidates")
    if isinstance(value, list | dict):
        return len(value)
    return int(value) if isinstance(value, int | float) else None


# --- the runs and the printout ------------------------------------------------------------------------------
def run_one(market: str, seed: int, candles: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="tradingai-bench-learning-") as var:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tradingai.settings.local",
            "TRADINGAI_VAR_DIR": var,
            "DATABASE_URL": f"sqlite:///{var}/db.sqlite3",
            "LOG_LEVEL": "ERROR",
        }
        done = subprocess.run(
            [sys.executable, "-m", "bench.bench_learning", "--child", market, str(seed), str(candles)],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
    if done.returncode != 0:
        return {"market": market, "seed": seed, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _f(value, spec: str = "+.2f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def summarise(market: str, runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    oracle_r = _mean(r["oracle"]["r"] for r in ok)
    adaptive_r = _mean(r["adaptive"]["r"] for r in ok)
    captures = [r["adaptive"]["r"] / r["oracle"]["r"] for r in ok if r["oracle"]["r"] > 0]
    oracle_n = sum(r["oracle"]["trades"] for r in ok)
    adaptive_n = sum(r["adaptive"]["trades"] for r in ok)
    traded = sum(r["traded"] for r in ok)
    return {
        "market": market,
        "seeds": len(ok),
        "errors": [r for r in runs if "error" in r],
        "failed_cycles": [
            (r["seed"], r["failed_cycles"], r["first_failure"]) for r in ok if r["failed_cycles"]
        ],
        "oracle_r": oracle_r,
        "oracle_trades": oracle_n / len(ok) if ok else None,
        "oracle_mean": sum(r["oracle"]["r"] for r in ok) / oracle_n if oracle_n else None,
        "adaptive_r": adaptive_r,
        "adaptive_trades": adaptive_n / len(ok) if ok else None,
        "adaptive_mean": sum(r["adaptive"]["r"] for r in ok) / adaptive_n if adaptive_n else None,
        "capture": _mean(captures),
        "captures": captures,
        "on_plant": sum(r["traded_on_plant"] for r in ok) / traded if traded else None,
        "first_correct": [r["first_correct"] for r in ok],
        "spurious": sum(r["spurious"] for r in ok),
        "candidates": sum(r["candidates"] for r in ok),
        "versions_per_1000": _mean(r["versions"] / r["cycles"] * 1000 for r in ok if r["cycles"]),
        "models": _mean(r["models"] for r in ok),
        "last_auc": _mean(r["last_auc"] for r in ok),
        "model_active": sum(r["model_active"] for r in ok),
        "gated": sum(r["gated"] for r in ok),
        "pnl_pct": _mean(r["pnl_pct"] for r in ok),
        "flip_cycles": _mean(r["flip_cycles"] for r in ok),
        "flip_per_seed": [r["flip_cycles"] for r in ok],
        "mismatched": sum(r["calls_mismatched"] for r in ok),
        "checked": sum(r["calls_checked"] for r in ok),
        "cells": [r["cells"] for r in ok if r["cells"]],
    }


COLUMNS = (
    ("market", 12), ("seeds", 6), ("oracle R", 9), ("n", 5), ("R/tr", 6), ("adapt. R", 9), ("n", 5),
    ("R/tr", 6), ("capture", 8), ("planted", 8), ("1st adapt.", 18), ("spurious", 10), ("ver/1k", 7),
    ("models", 7), ("AUC", 5), ("active", 7), ("gated", 6), ("P&L %", 7),
)  # fmt: skip


def report(summaries: dict[str, dict]) -> list[str]:
    def row(cells) -> str:
        return "".join(
            f"{cell:<{width}}" if i == 0 else f"{cell:>{width}}"
            for i, (cell, (_, width)) in enumerate(zip(cells, COLUMNS, strict=True))
        )

    lines = [row(name for name, _ in COLUMNS)]
    for s in summaries.values():
        control = s["market"] in CONTROLS
        firsts = "-" if control else ",".join("never" if f is None else str(f) for f in s["first_correct"])
        lines.append(
            row(
                [
                    s["market"],
                    s["seeds"],
                    _f(s["oracle_r"], "+.1f"),
                    _f(s["oracle_trades"], ".0f"),
                    _f(s["oracle_mean"]),
                    _f(s["adaptive_r"], "+.1f"),
                    _f(s["adaptive_trades"], ".0f"),
                    _f(s["adaptive_mean"]),
                    _f(s["capture"]),
                    _f(s["on_plant"], ".0%"),
                    firsts,
                    f"{s['spurious']}/{s['candidates']}",
                    _f(s["versions_per_1000"], ".1f"),
                    _f(s["models"], ".1f"),
                    _f(s["last_auc"], ".2f"),
                    f"{s['model_active']}/{s['seeds']}",
                    s["gated"],
                    _f(s["pnl_pct"], "+.2f"),
                ]
            )
        )
    lines.append(
        "  (means over seeds. oracle R, adapt. R: summed outcome_r of the oracle's and the bot's trades; "
        "n: trades per seed; R/tr: mean R per trade over all seeds' trades; planted: the share of the bot's "
        "trades made on planted-positive calls; 1st adapt.: resolved calls "
        "before the first correct adaptation, per seed; spurious: spurious patterns / candidates tried, all "
        "seeds; ver/1k: policy versions per 1,000 cycles; models: outcome models trained; AUC: the last "
        "one's out of sample; active: seeds where one was ever active; gated: calls it refused, all seeds; "
        "P&L: the paper account, % of the starting balance)"
    )
    checked = sum(s["checked"] for s in summaries.values())
    differing = sum(s["mismatched"] for s in summaries.values())
    lines.append(f"  the replay's calls against the generator's: {differing} of {checked} slots differ")
    for s in summaries.values():
        for e in s["errors"]:
            lines.append(f"  {s['market']} seed {e['seed']} failed: {' '.join(e['error'])}")
        for seed, failed, first in s["failed_cycles"]:
            lines.append(f"  {s['market']} seed {seed}: {failed} cycles failed, the first with {first}")
    if "conjunction" in summaries and summaries["conjunction"]["cells"]:
        every = summaries["conjunction"]["cells"]
        a, b = (" and ".join(f"{k} {v}" for k, v in part.items()) for part in CONJUNCTION)
        cells = []
        for name in every[0]:
            calls, r_sum, resolved = (sum(c[name][i] for c in every) for i in range(3))
            cells.append(f"{name} {calls} ({_f(r_sum / resolved if resolved else None)})")
        lines.append(
            f"  conjunction, A = {a}, B = {b}; calls in all seeds (mean outcome_r): {', '.join(cells)}"
        )
    if "flip" in summaries:
        flip = summaries["flip"]
        seeds = ", ".join(str(c) for c in flip["flip_per_seed"])
        lines.append(
            f"  flip: the last trade on the dead condition {_f(flip['flip_cycles'], '.0f')} cycles after the "
            f"flip (mean; per seed {seeds})"
        )
    aims = [
        f"{m} {_f(summaries[m]['oracle_mean'])} (aim {aim:+.1f})"
        for m, aim in ORACLE_AIM.items()
        if m in summaries
    ]
    if aims:
        lines.append(f"  the plant's size, the oracle's mean R per trade: {', '.join(aims)}")
    return lines


def targets(summaries: dict[str, dict]) -> list[str]:
    def line(text: str, value, ok: bool | None) -> str:
        verdict = "not measured" if ok is None else "met" if ok else "NOT met"
        return f"  {text}: {value} ({verdict})"

    lines = ["done when (means over seeds):"]
    for market, floor in (("strong", 0.7), ("weak", 0.4)):
        capture = summaries[market]["capture"] if market in summaries else None
        value = _f(capture, ".3f")
        if capture is not None:
            value += f" (per seed {', '.join(_f(c, '.2f') for c in summaries[market]['captures'])})"
        lines.append(
            line(f"{market} capture >= {floor}", value, None if capture is None else capture >= floor)
        )
    if "conjunction" in summaries:
        s = summaries["conjunction"]
        found = sum(f is not None for f in s["first_correct"])
        ok = found == s["seeds"] > 0 and s["capture"] is not None and s["capture"] >= 0.5
        value = f"found in {found} of {s['seeds']} seeds, capture {_f(s['capture'], '.3f')}"
        lines.append(line("conjunction pattern found and used, capture >= 0.5", value, ok))
    else:
        lines.append(line("conjunction pattern found and used, capture >= 0.5", "-", None))
    flip = summaries["flip"]["flip_cycles"] if "flip" in summaries else None
    ok = None if flip is None else flip <= 500
    lines.append(line("flip: trading on the dead condition stops within 500 cycles", _f(flip, ".0f"), ok))
    controls = [summaries[m] for m in CONTROLS if m in summaries]
    if controls:
        losses = {s["market"]: -(s["pnl_pct"] or 0.0) for s in controls}
        value = ", ".join(f"{m} {loss:.2f} %" for m, loss in losses.items())
        lines.append(line("controls: mean loss <= 0.5 % of equity, each", value, max(losses.values()) <= 0.5))
        bad, tried = sum(s["spurious"] for s in controls), sum(s["candidates"] for s in controls)
        rate = bad / tried if tried else 0.0
        value = f"{bad} of {tried} = {rate:.1%}"
        lines.append(
            line("controls: spurious patterns in <= 5 % of (seed x candidate) cases", value, rate <= 0.05)
        )
        gated = sum(s["gated"] for s in controls)
        lines.append(line("controls: the outcome model never gates", f"{gated} calls refused", gated == 0))
    most = max(summaries.values(), key=lambda s: s["versions_per_1000"] or 0)
    value = f"the most: {most['market']} {_f(most['versions_per_1000'], '.1f')}"
    lines.append(
        line(
            "every market: <= 20 policy versions per 1,000 cycles",
            value,
            (most["versions_per_1000"] or 0) <= 20,
        )
    )
    return lines


def _progress(result: dict) -> str:
    oracle, adaptive, seconds = result["oracle"], result["adaptive"], result["seconds"]
    return (
        f"oracle {oracle['r']:+.1f} R in {oracle['trades']} trades, adaptive {adaptive['r']:+.1f} R in "
        f"{adaptive['trades']} (generated in {seconds['generate']} s, replayed in {seconds['replay']} s)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.bench_learning", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed of 2,000 candles")
    parser.add_argument("--markets", default=",".join(MARKETS))
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--candles", type=int)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--dump", type=Path, help="write each replay's resolved calls to DIR/<market>-<seed>.json"
    )
    args = parser.parse_args(argv)
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        os.environ["BENCH_LEARNING_DUMP"] = str(args.dump.resolve())
    seeds = args.seeds or (1 if args.quick else 3)
    candles = args.candles or (2000 if args.quick else 5000)
    markets = [m for m in args.markets.split(",") if m]
    unknown = set(markets) - set(MARKETS)
    if unknown:
        parser.error(f"unknown market(s) {', '.join(sorted(unknown))}: one of {', '.join(MARKETS)}")
    jobs = [(m, s) for m in markets for s in range(1, seeds + 1)]
    print(
        f"learning: {len(markets)} markets x {seeds} seeds x {candles} hourly candles, two replays at a time"
    )
    started = time.perf_counter()
    runs: dict[str, list[dict]] = {m: [] for m in markets}
    with ThreadPoolExecutor(2) as pool:
        futures = {pool.submit(run_one, m, s, candles): (m, s) for m, s in jobs}
        for done, future in enumerate(as_completed(futures), start=1):
            result = future.result()
            runs[result["market"]].append(result)
            what = "FAILED" if "error" in result else _progress(result)
            print(f"  [{done}/{len(jobs)}] {result['market']} seed {result['seed']}: {what}", flush=True)
    summaries = {m: summarise(m, sorted(runs[m], key=lambda r: r["seed"])) for m in markets}
    for text in report(summaries) + targets(summaries):
        print(text)
    print(f"took {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"summaries": summaries, "runs": runs}, indent=1, default=str))


if __name__ == "__main__":
    if "--child" in sys.argv:
        market, seed, candles = sys.argv[sys.argv.index("--child") + 1 :][:3]
        print(json.dumps(child(market, int(seed), int(candles)), default=str))
    else:
        main(sys.argv[1:])
