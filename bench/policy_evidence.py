"""How one condition's evidence grew over a replay's calls, as the policy weighs it: the resolved calls a
learning benchmark replay dumped (`python -m bench.bench_learning --dump DIR`), counted into the policy's
totals (learning.counters.policy_row) in the order they resolved, and every `--every` calls the condition's
weighted n, mean R, cluster-robust standard error, clusters, t and Benjamini-Hochberg q among the
candidates then tested (learning.policy.Evidence). What docs/learning.md quotes on what holds the policy
back.

Run: .venv/bin/python -m bench.policy_evidence DIR/strong-2.json '{"regime": "TREND_HIGH_VOL"}' [--every 200]
"""

import argparse
import json
import os
from datetime import datetime
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.policy_evidence", description=__doc__.split("\n\n")[0])
    parser.add_argument("dump", type=Path, help="a file bench_learning --dump wrote")
    parser.add_argument("condition", type=json.loads, help='e.g. \'{"regime": "TREND_HIGH_VOL"}\'')
    parser.add_argument("--every", type=int, default=200, help="calls between two lines")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingai.settings.local")
    import django

    django.setup()
    import numpy as np
    from django.conf import settings
    from scipy import stats

    from learning.counters import POLICY_KEY, POLICY_SUMS, policy_row
    from learning.models import AILearningData
    from learning.policy import Evidence
    from market.timeframes import TIMEFRAME_PERIODS

    calls = sorted(json.loads(args.dump.read_text()), key=lambda c: c["resolved_at"])
    totals: dict[tuple, np.ndarray] = {}
    for count, call in enumerate(calls, start=1):
        record = AILearningData(
            user_id=1, bot_id=1, symbol="X/USD", timeframe="1h", recommendation=call["recommendation"],
            regime=call["regime"], market_sentiment=call["market_sentiment"],
            confidence_score=call["confidence"], outcome_r=call["outcome_r"],
            resolved_at=datetime.fromisoformat(call["resolved_at"]),
            market_conditions={"as_of": call["as_of"], "rsi": call["rsi"]},
        )  # fmt: skip
        row = policy_row(record)
        key, sums = row[: len(POLICY_KEY)], np.array(row[len(POLICY_KEY) :], float)
        totals[key] = totals.get(key, 0) + sums
        if count % args.every:
            continue
        rows = [
            {**dict(zip(POLICY_KEY, key, strict=True)), **dict(zip(POLICY_SUMS, sums, strict=True))}
            for key, sums in totals.items()
        ]
        evidence = Evidence(rows, {1: ("X/USD", "1h")}, TIMEFRAME_PERIODS["1h"])
        candidates = evidence.candidates(with_thresholds=True)
        if args.condition not in candidates:
            print(f"{count} calls: not a candidate yet")
            continue
        found = evidence.stats(np.array([evidence.mask(c) for c in candidates]), evidence.long)
        tested = found["n"] >= settings.LEARNING_MIN_SAMPLES
        q = np.ones(len(candidates))
        if tested.any():
            q[tested] = stats.false_discovery_control(found["p_above"][tested], method="bh")
        i = candidates.index(args.condition)
        mean, se = found["mean"][i], found["se"][i]
        print(
            f"{count} calls: n {found['raw_n'][i]:.0f}, mean {mean:+.2f} R, se {se:.2f}, "
            f"{found['clusters'][i]} clusters, t {mean / se:.1f}, q {q[i]:.3f} among {tested.sum()} tested"
        )


if __name__ == "__main__":
    main()
