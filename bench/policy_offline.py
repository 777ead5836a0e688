"""The adaptive policy alone, replayed over the resolved calls a learning benchmark replay dumped
(`python -m bench.bench_learning --dump DIR`): seconds where the benchmark takes minutes, for trying a change
to learning/policy.py before running the benchmark itself.

Every call is scored by one rule whether traded or not (docs/learning.md), so the calls a replay resolved
are what any policy would have learned from. Walking them in the order they were made, the policy is learned
again (learning.policy.relearn, on totals kept by learning.counters.policy_row) once POLICY_RELEARN_CALLS more
have resolved, and a call is taken when the policy lets it (its threshold, refusal and size) and the one taken
before has resolved; the oracle takes the planted-positive calls one at a time, as the benchmark's does. Not
modelled: the cycle's other risk limits (daily loss, cool-down) and the outcome model's gate; on the dumps of
bench_learning the R figures come within a few R of the replay's.

Prints per dump: the oracle's and the policy's summed R, capture, trades, the summed R times each trade's size
factor (at the default 1 % risk a trade, about the paper account's result in %), policy versions, and for
the flip market the cycles from the flip to the last trade on a planted-negative call; then the mean capture
per market. `--only FIELD` restricts the conditions tried to FIELD's values (an experiment: it tells the
policy the shape of a plant keyed to FIELD). `--set NAME=VALUE` sets one of learning.policy's constants for
the run (e.g. `--set DROP_Z=1.0`; the half-lives are settings: TRADINGAI_POLICY_*_HALF_LIFE_CANDLES).

Run: .venv/bin/python -m bench.policy_offline DIR/*.json [--only regime] [--set DROP_Z=1.0 ...]
"""

import argparse
import json
import os
import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

FLIP = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=2500)  # bench_learning: START + candles // 2


def records_of(path: Path) -> list[tuple[dict, object]]:
    """The dumped calls in the order they were made, each with an unsaved AILearningData of its fields."""
    from learning.models import AILearningData

    calls = sorted(json.loads(path.read_text()), key=lambda c: c["as_of"])
    return [
        (
            call,
            AILearningData(
                user_id=1,
                bot_id=1,
                symbol="X/USD",
                timeframe="1h",
                recommendation=call["recommendation"],
                regime=call["regime"],
                market_sentiment=call["market_sentiment"],
                confidence_score=call["confidence"],
                outcome_r=call["outcome_r"],
                resolved_at=datetime.fromisoformat(call["resolved_at"]),
                market_conditions={"as_of": call["as_of"], "rsi": call["rsi"]},
            ),
        )
        for call in calls
    ]


class Totals:
    """The policy's running totals (PolicyCounter rows) of the calls counted so far."""

    def __init__(self):
        from learning.policy import PolicyTotals

        self.totals = PolicyTotals()

    def count(self, record) -> None:
        from learning.counters import POLICY_KEY, policy_row

        row = policy_row(record)
        self.totals.add(row[1 : len(POLICY_KEY)], row[len(POLICY_KEY) :])

    def counters(self):
        """The rows as learning.policy.relearn takes them (a CounterTable)."""
        return self.totals.table()


def no_window(bot_ids: list[int]) -> dict:
    """A policy's data window (learning.policy.policy_window), which nothing here reads."""
    return {"data_from": None, "data_to": None}


def run(path: Path) -> dict:
    from django.conf import settings

    from automation.models import Bot
    from learning.conditions import conditions_of
    from learning.policy import effective_policy, relearn

    bot = Bot(
        pk=1, owner_id=1, symbol="X/USD", timeframe="1h", min_confidence=70, max_open_trades=1,
        risk_per_trade_pct=Decimal(1),
    )  # fmt: skip
    records = records_of(path)
    by_resolution = sorted(records, key=lambda r: r[1].resolved_at)
    totals, resolved, learned_at = Totals(), 0, None
    latest, versions = None, 0
    busy, oracle_busy = None, None
    taken, oracle, dead = [], [], []
    for call, record in records:
        made = datetime.fromisoformat(call["as_of"])
        while resolved < len(by_resolution) and by_resolution[resolved][1].resolved_at <= made:
            totals.count(by_resolution[resolved][1])
            resolved += 1
        if learned_at is None or resolved - learned_at >= settings.POLICY_RELEARN_CALLS:  # first: the probe
            latest, new = relearn(bot, latest, {1: ("X/USD", "1h")}, totals.counters(), no_window)
            versions += new
            policy, learned_at = effective_policy(bot, latest), resolved
        if (call["weight"] or 0) > 0 and (oracle_busy is None or oracle_busy <= made):
            oracle.append(call["outcome_r"])
            oracle_busy = record.resolved_at
        if busy is not None and busy > made:
            continue
        conditions = {**conditions_of(record), "confidence": call["confidence"]}
        size = policy.size_for(call["confidence"])
        if call["confidence"] < policy.min_confidence or size <= 0 or policy.refusal(conditions):
            continue
        taken.append((call["outcome_r"], size))
        busy = record.resolved_at
        if (call["weight"] or 0) < 0 and made >= FLIP:
            dead.append((made - FLIP) / timedelta(hours=1))
    market = path.stem.rsplit("-", 1)[0]
    adaptive, oracle_r = sum(r for r, _ in taken), sum(oracle)
    return {
        "dump": path.name,
        "market": market,
        "oracle_r": round(oracle_r, 1),
        "adaptive_r": round(adaptive, 1),
        "capture": round(adaptive / oracle_r, 3) if oracle_r > 0 else None,
        "trades": len(taken),
        "sized_r": round(sum(r * size for r, size in taken), 2),
        "versions": versions,
        "flip_cycles": int(max(dead, default=0)) if market == "flip" else None,
    }


def only(field: str) -> None:
    """Restrict the conditions the policy tries to `field`'s values."""
    from learning import policy

    tried = policy.Evidence.candidates

    def candidates(self, with_thresholds: bool) -> list[dict]:
        found = [c for c in tried(self, False) if list(c) == [field]]
        return found or [{"min_confidence": 50}]

    policy.Evidence.candidates = candidates


def constants(assignments: list[str]) -> dict:
    """NAME=VALUE pairs as learning.policy's constants: each NAME must be one, each VALUE a JSON value."""
    from learning import policy

    found = {}
    for assignment in assignments:
        name, _, value = assignment.partition("=")
        if not name.isupper() or not hasattr(policy, name):
            raise SystemExit(f"--set {assignment}: {name} is not a constant of learning.policy")
        found[name] = json.loads(value)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.policy_offline", description=__doc__.split("\n\n")[0])
    parser.add_argument("dumps", type=Path, nargs="+", help="files bench_learning --dump wrote")
    parser.add_argument("--only", help="try only this field's values (e.g. regime)")
    parser.add_argument("--set", action="append", default=[], help="NAME=VALUE: a learning.policy constant")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingai.settings.local")
    import django

    django.setup()
    if args.only:
        only(args.only)
    from learning import policy

    for name, value in constants(args.set).items():
        setattr(policy, name, value)
    results = [run(path) for path in args.dumps]
    for result in results:
        print(json.dumps(result))
    for market in sorted({r["market"] for r in results}):
        captures = [r["capture"] for r in results if r["market"] == market and r["capture"] is not None]
        if captures:
            print(f"{market}: mean capture {statistics.fmean(captures):.3f} over {len(captures)} dumps")


if __name__ == "__main__":
    main()
