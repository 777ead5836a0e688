"""How much of a planted edge an honest learner could capture at all, from the calls a learning benchmark
replay dumped (`python -m bench.bench_learning --dump DIR`): a learner told which calls are planted-positive
(what no learner is told) still has to wait until their evidence clears its bar before it trades them.

For each dump: the planted-positive calls resolved by the time of each of the oracle's trades (the oracle of
bench_learning: those calls taken one at a time), their mean R and cluster-robust t, with the clusters and
formula of the policy (docs/learning.md, "The adaptive policy": the POLICY_CLUSTER_CANDLES in which a call
resolved; `var(m) = G/(G-1) · Σ_g (S_g - m·N_g)² / n²`, unweighted); and the capture of a learner that trades
exactly the oracle's trades from the first one made once that t clears a bar, at least MIN_CLUSTERS clusters
behind it: one test at `--alpha` one-sided (Student's t, the clusters less one degrees of freedom), and the
first rejection of Benjamini-Hochberg among `--candidates` conditions (p ≤ alpha / candidates: what the
first condition the policy adopts must clear). Optimistic: it knows the set, tests nothing else and never
drops it; not a strict bound, since a policy can clear the bar early on a lucky subset.

Run: .venv/bin/python -m bench.policy_ceiling DIR/weak-*.json [--alpha 0.05] [--candidates 60]
"""

import argparse
import json
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from scipy import special

START = datetime(2024, 1, 1, tzinfo=UTC)  # bench_learning's first candle
CLUSTER = timedelta(hours=50)  # POLICY_CLUSTER_CANDLES of the benchmark's hourly candles
MIN_CLUSTERS = 8  # learning.policy.MIN_CLUSTERS
MIN_SAMPLES = 30  # TRADINGAI_LEARNING_MIN_SAMPLES


def t_of(r: np.ndarray, cluster: np.ndarray) -> tuple[float, int]:
    """The cluster-robust t of the mean of `r`, and the clusters behind it."""
    groups, which = np.unique(cluster, return_inverse=True)
    g = len(groups)
    if g < 2:
        return 0.0, g
    mean = r.mean()
    spread = (np.bincount(which, r - mean) ** 2).sum()
    se = np.sqrt(spread / len(r) ** 2 * g / (g - 1))
    return (float(mean / se) if se > 0 else 0.0), g


def ceiling(calls: list[dict], alpha: float, candidates: int) -> dict:
    calls = sorted(calls, key=lambda c: c["as_of"])
    planted = [c for c in calls if (c["weight"] or 0) > 0]
    resolved = np.array([datetime.fromisoformat(c["resolved_at"]) for c in planted])
    r = np.array([c["outcome_r"] for c in planted])
    cluster = np.array([(at - START) // CLUSTER for at in resolved])
    oracle, busy = [], None
    for c in planted:
        if busy is None or busy <= c["as_of"]:
            oracle.append(c)
            busy = c["resolved_at"]
    total = sum(c["outcome_r"] for c in oracle)
    bars = {"one test": alpha, "BH first": alpha / candidates}
    start = dict.fromkeys(bars)
    for i, trade in enumerate(oracle):
        known = resolved <= datetime.fromisoformat(trade["as_of"])
        if known.sum() < MIN_SAMPLES:
            continue
        t, g = t_of(r[known], cluster[known])
        for name, level in bars.items():
            if start[name] is None and g >= MIN_CLUSTERS and t > special.stdtrit(g - 1, 1 - level):
                start[name] = i
        if all(v is not None for v in start.values()):
            break
    middle = START + (datetime.fromisoformat(planted[-1]["as_of"]) - START) / 2
    t_full, _ = t_of(r, cluster)
    first = resolved < middle
    t_half, _ = t_of(r[first], cluster[first])
    found = {
        "oracle_r": round(total, 1),
        "oracle_trades": len(oracle),
        "planted_calls": len(planted),
        "mean_r": round(float(r.mean()), 3),
        "t": round(t_full, 2),
        "t_first_half": round(t_half, 2),
    }
    for name, i in start.items():
        after = sum(c["outcome_r"] for c in oracle[i:]) if i is not None else 0.0
        found[f"{name}: from trade"] = i
        found[f"{name}: capture"] = round(after / total, 3) if total > 0 else None
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.policy_ceiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("dumps", type=Path, nargs="+", help="files bench_learning --dump wrote")
    parser.add_argument("--alpha", type=float, default=0.05, help="the one-sided level (POLICY_FDR)")
    parser.add_argument("--candidates", type=int, default=60, help="conditions tested (about 60 here)")
    args = parser.parse_args(argv)
    results = {
        path: ceiling(json.loads(path.read_text()), args.alpha, args.candidates) for path in args.dumps
    }
    for path, found in results.items():
        print(json.dumps({"dump": path.name, **found}))
    for market in sorted({path.stem.rsplit("-", 1)[0] for path in results}):
        mine = [f for path, f in results.items() if path.stem.rsplit("-", 1)[0] == market]
        means = {
            name: round(statistics.fmean(f[name] for f in mine if f[name] is not None), 3)
            for name in ("one test: capture", "BH first: capture")
            if any(f[name] is not None for f in mine)
        }
        print(f"{market}: {len(mine)} dumps, mean {means}")


if __name__ == "__main__":
    main()
