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

    from learning.policy import Evidence
    from market.timeframes import TIMEFRAME_PERIODS

    from .policy_offline import Totals, records_of

    records = sorted(records_of(args.dump), key=lambda r: r[1].resolved_at)
    totals = Totals()
    for count, (_, record) in enumerate(records, start=1):
        totals.count(record)
        if count % args.every:
            continue
        rows = totals.counters()
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
