"""The adaptive trading policy: what a bot's resolved analyses say about when to trade and how big,
learned with database aggregates and stored with its provenance; the owner's pins override any of it.
Formulas: docs/learning.md."""

import itertools
import math
import operator
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min, Sum
from scipy import special

from core.values import BUY_OR_SELL, Regime, Sentiment
from market.timeframes import TIMEFRAME_PERIODS

from .calibration import Calibration, fit_calibration
from .conditions import confidence_band, describe, evidence_text, matches
from .counters import POLICY_KEY, POLICY_SUMS
from .insights import Z95
from .models import AILearningData, LearnedPolicy, PolicyCounter

THRESHOLDS = tuple(range(50, 95, 5))  # the minimum confidences tried
POLICY_ROW = POLICY_KEY[1:]  # a counter's key within its user
# At most this many conditions to trade inside of: each must add R of its own beyond what the others cover.
MAX_PATTERNS = 4
# A condition joins the ones traded only if it makes them worth this share more R a candle.
VALUE_GAIN = 0.05
# What a condition in force is worth more than another in the choice of what to trade (the hysteresis).
KEEP_MARGIN = 0.2
# Below this many clusters a cluster-robust standard error is biased low (Cameron and Miller, "A
# Practitioner's Guide to Cluster-Robust Inference", 2015): no condition is adopted on fewer.
MIN_CLUSTERS = 8
# A condition in force is dropped once its recent mean is below 0 by this many of its standard errors: an
# edge that is still there dips below 0 now and then, one that turned falls well below.
DROP_Z = 0.5
# A new Kelly stake within this share of the one in force does not change the policy.
SIZE_STEADY = 0.25
# The conditions a policy can learn (or be pinned) to stay out of, each with the values it can take.
AVOIDABLE = {"regime": tuple(Regime.values), "market_sentiment": tuple(Sentiment.values)}
PINNABLE = ("min_confidence", "size_factor", "avoid_conditions")


@dataclass(frozen=True)
class Policy:
    """The values the decision uses: learned, or the bot's own settings before there is enough to learn
    from, with the owner's pins on top."""

    min_confidence: float
    size_factor: float = 1.0
    avoid_conditions: list[dict] = field(default_factory=list)
    learned: bool = False
    patterns: list[dict] = field(default_factory=list)
    kelly: dict | None = None  # the learned size's inputs (sample_sizes["kelly"]); None when it is pinned

    def size_for(self, confidence: float) -> float:
        """The size factor for a call of this stated confidence: the policy's, scaled by the Kelly stake at
        the call's calibrated probability of a win over the stake at the traded calls' hit rate (at most
        twice it, and the cap), so that where the stated confidence says something, the surer calls are
        sized up and the others down."""
        k = self.kelly or {}
        known = "calibration" in k and k.get("mean_loss_r") and k.get("mean_win_r")
        if not self.size_factor or not known:
            return self.size_factor
        b = k["mean_win_r"] / -k["mean_loss_r"]
        at_rate = k["hit_rate"] - (1 - k["hit_rate"]) / b
        p = Calibration.from_json(k["calibration"]).probability(confidence)
        ratio = min(2.0, max(0.0, (p - (1 - p) / b) / at_rate)) if at_rate > 0 else 1.0
        return round(min(settings.SIZE_FACTOR_CAP, self.size_factor * ratio), 4)

    def refusal(self, conditions: dict) -> str:
        """Why the policy's conditions keep a call out (`conditions`: learning.conditions.conditions_of, with
        its "confidence"), in words, or "": an avoid-condition it falls under (pinned, or learned by a policy
        stored before patterns were), a learned pattern to avoid, or being outside every pattern it trades
        inside of."""
        for c in self.avoid_conditions:
            if conditions.get(c["field"]) != c["value"]:
                continue
            if "n" not in c:  # pinned by the owner: there is no evidence to quote
                return f"pinned to avoid {c['field']} {c['value']}"
            if not any(p["action"] == "avoid" for p in self.patterns):  # else worded with its pattern below
                return (
                    f"learned to avoid {c['field']} {c['value']} "
                    f"(expectancy {c['expectancy_r']:+.2f} R over {c['n']} analyses)"
                )
        for p in self.patterns:
            if p["action"] == "avoid" and matches(conditions, p["conditions"]):
                return f"learned to avoid {describe(p['conditions'])} ({evidence_text(p)})"
        inside = [p for p in self.patterns if p["action"] == "trade"]
        if inside and not any(matches(conditions, p["conditions"]) for p in inside):
            edges = "; ".join(describe(p["conditions"]) for p in inside)
            return f"outside the conditions it learned to trade in: {edges}"
        return ""


def latest_policy(bot) -> LearnedPolicy | None:
    return LearnedPolicy.objects.filter(bot=bot).order_by("-created_at", "-pk").first()


# effective_policy's `latest` when the caller has not read it: None is a bot with no policy yet.
_UNREAD = object()


def effective_policy(bot, latest: LearnedPolicy | object | None = _UNREAD) -> Policy:
    """`latest`: the bot's latest LearnedPolicy (None: it has none), when the caller has read it already."""
    if latest is _UNREAD:
        latest = latest_policy(bot)
    if latest is None:
        return Policy(min_confidence=float(bot.min_confidence), size_factor=settings.POLICY_PROBE_SIZE)
    values = {
        "min_confidence": latest.min_confidence,
        "size_factor": latest.size_factor,
        "avoid_conditions": latest.avoid_conditions,
    }
    return Policy(
        **{**values, **latest.pins},
        learned=bool(latest.sample_sizes.get("learned")),
        patterns=latest.patterns,
        kelly=None if "size_factor" in latest.pins else latest.sample_sizes.get("kelly"),
    )


def learn_policy(bot) -> LearnedPolicy:
    """Learn the bot's policy from resolved BUY/SELL analyses (traded or not), its own or pooled with the
    owner's other bots (`pool`), read from their running totals (PolicyCounter), so that learning costs the
    same on the thousandth day as on the first; store it if it differs from the latest, else bring the
    latest's data window and sample sizes up to date."""
    with transaction.atomic():
        return keep_policy(*relearn(bot, latest_policy(bot), *policy_counters(bot), policy_window))


def relearn(bot, current: LearnedPolicy | None, alike: dict, counters: "CounterTable", window_of):
    """(the policy to keep, whether it is new) from the policy counters of the owner's bots `alike` with the
    bot, wherever they are kept (the database, a replay's books); `window_of(bot_ids)` is the data window
    of the bots it learned from (`policy_window`)."""
    values, sizes, bot_ids = policy_from(bot, alike, counters, current)
    return next_policy(bot, current, values, sizes, window_of(bot_ids))


def policy_counters(bot) -> tuple[dict[int, tuple[str, str]], "CounterTable"]:
    """The owner's bots with the bot's analyst (id -> symbol and timeframe), and their PolicyCounter rows:
    what `policy_from` pools."""
    alike = {
        pk: (symbol, timeframe)
        for pk, symbol, timeframe in type(bot)
        .objects.filter(owner_id=bot.owner_id, analyst=bot.analyst)
        .values_list("pk", "symbol", "timeframe")
    }
    rows = PolicyCounter.objects.filter(user_id=bot.owner_id, bot_id__in=list(alike)).values(
        *POLICY_ROW, *POLICY_SUMS
    )
    return alike, PolicyTotals(rows).table()


def policy_calls_resolved(bot) -> int:
    """The resolved calls in the policy totals of the owner's bots with the bot's analyst: what
    `sample_sizes["calls"]` counts."""
    alike = type(bot).objects.filter(owner_id=bot.owner_id, analyst=bot.analyst).values("pk")
    found = PolicyCounter.objects.filter(user_id=bot.owner_id, bot_id__in=alike).aggregate(n=Sum("n"))
    return found["n"] or 0


def policy_window(bot_ids: list[int]) -> dict:
    """The earliest and the latest resolved call of the bots a policy learned from: its data window."""
    return policy_calls(bot_id__in=bot_ids).aggregate(
        data_from=Min("resolved_at"), data_to=Max("resolved_at")
    )


REFRESHED = ["avoid_conditions", "patterns", "sample_sizes", "data_from", "data_to"]


def keep_policy(policy: LearnedPolicy, new: bool) -> LearnedPolicy:
    """Store what `next_policy` gave: a new version, or the latest's evidence and window made current."""
    if new:
        policy.save()
    else:
        policy.save(update_fields=REFRESHED)
    return policy


def policy_from(
    bot, alike: dict[int, tuple[str, str]], counters: "CounterTable", current: LearnedPolicy | None = None
) -> tuple[dict, dict, list[int]]:
    """The policy's values and their evidence from the PolicyCounter rows of the owner's bots with the
    bot's analyst (`alike`: id -> (symbol, timeframe)), and the bots whose calls it learned from. `current`,
    the policy in force, is what the hysteresis keeps unless the evidence turned against it."""
    minimum = settings.LEARNING_MIN_SAMPLES
    rows, bot_ids, pooling = pool(bot, list(alike), counters, minimum)
    values = {
        "min_confidence": float(bot.min_confidence),
        "size_factor": settings.POLICY_PROBE_SIZE,
        "avoid_conditions": [],
        "patterns": [],
    }
    sizes = {
        "learned": False,
        "resolved": rows.calls(),
        "calls": counters.calls(),  # the pool's, learned from or not: when to learn again
        "pooling": pooling,
        "candidates": 0,
    }
    if not len(rows):
        return values, sizes, bot_ids
    evidence = Evidence(rows, alike, TIMEFRAME_PERIODS[bot.timeframe], bot.max_open_trades)
    trade, traded, tried, eligible = evidence.edges(_kept(current, "trade"), minimum)
    avoid, avoided, tried_avoid = evidence.carve_outs(traded, _kept(current, "avoid"), minimum)
    sizes |= {"candidates": tried + tried_avoid, "eligible": eligible, "learned": eligible > 0}
    if not eligible:
        return values, sizes, bot_ids
    taken = traded & ~avoided
    values["patterns"] = trade + avoid
    values["avoid_conditions"] = [
        {"field": field, "value": value, "n": p["n"], "expectancy_r": p["expectancy_r"]}
        for p in avoid
        if len(p["conditions"]) == 1
        for field, value in p["conditions"].items()
        if field in AVOIDABLE
    ]
    if trade:
        values["min_confidence"] = float(min(p["conditions"].get("min_confidence", 0) for p in trade))
        sizes["traded"] = evidence.summary(taken)
        factor, sizes["kelly"] = _size_factor(evidence.totals(taken), bot, sizes["traded"])
        values["size_factor"] = _steady(current, factor)
        calibration = evidence.calibration(taken)
        if calibration is not None:
            sizes["kelly"]["calibration"] = calibration.to_json()
    else:
        values["size_factor"] = 0.0
    return values, sizes, bot_ids


def _kept(current: LearnedPolicy | None, action: str) -> list[dict]:
    """The conditions of the policy in force with this action: what the hysteresis starts from."""
    if current is None:
        return []
    return [p["conditions"] for p in current.patterns if p["action"] == action]


def _steady(current: LearnedPolicy | None, factor: float) -> float:
    """The new size factor, unless it is within SIZE_STEADY of the one in force (and both trade): then that
    one, so that the policy does not take a new version with every resolution's small move of the Kelly
    stake."""
    if current is None or not factor or not current.size_factor:
        return factor
    if abs(factor - current.size_factor) <= SIZE_STEADY * max(factor, current.size_factor):
        return current.size_factor
    return factor


CODED = ("regime", "market_sentiment", "rsi_band")  # a counter row's conditions kept as codes
# A counter row's numbers as CounterTable keeps them, in one C call per row.
_NUMBERS = operator.itemgetter("bucket", "block", *POLICY_SUMS)
_SUMS_AT = 2  # where POLICY_SUMS start among a row's numbers


@dataclass(frozen=True, eq=False)
class CounterTable:
    """Policy counter rows as columns, in the order they came: each row's bot, its numbers (bucket, block and
    POLICY_SUMS, as floats) and its conditions (CODED) as codes into `values`, each condition's values in the
    order they were first seen. What `pool` and `Evidence` read."""

    bot_id: np.ndarray
    numbers: np.ndarray
    codes: dict[str, np.ndarray]
    values: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.bot_id)

    def __getitem__(self, rows: np.ndarray) -> "CounterTable":
        """The rows selected by `rows` (a mask), in their order."""
        codes = {name: codes[rows] for name, codes in self.codes.items()}
        return CounterTable(self.bot_id[rows], self.numbers[rows], codes, self.values)

    def column(self, name: str) -> np.ndarray:
        """One of POLICY_SUMS, a value a row."""
        return self.numbers[:, _SUMS_AT + POLICY_SUMS.index(name)]

    def calls(self) -> int:
        """The calls counted in the rows (an int, as sample sizes are stored)."""
        return int(self.column("n").sum())


class PolicyTotals:
    """The policy's running totals, one row per counter key (POLICY_ROW), kept as growing columns that a
    resolution adds to in place (`add`): a replay's books hand them to every relearning without making a
    dict a row into arrays each time (at 5,000 hours' counters, making the Evidence 1.2 -> 0.25 ms, a
    relearning 3.4 -> 2.1 ms). The database's PolicyCounter rows are read into one too (`rows`), so that
    both ledgers hand the same table to `relearn`."""

    def __init__(self, rows=()):
        """`rows`: counter rows as dicts with POLICY_ROW and POLICY_SUMS, one per key."""
        rows = list(rows)
        self.index = {tuple(map(row.__getitem__, POLICY_ROW)): i for i, row in enumerate(rows)}
        width = _SUMS_AT + len(POLICY_SUMS)
        self.numbers = np.array(list(map(_NUMBERS, rows)), float).reshape(len(rows), width)
        self.bot_id = np.array([row["bot_id"] for row in rows], np.int64)
        self.values: dict[str, list[str]] = {}
        self.code_of: dict[str, dict[str, int]] = {}
        self.codes: dict[str, np.ndarray] = {}
        for name in CODED:
            column = [row[name] for row in rows]
            self.code_of[name] = {value: i for i, value in enumerate(dict.fromkeys(column))}
            self.values[name] = list(self.code_of[name])
            self.codes[name] = np.array(list(map(self.code_of[name].__getitem__, column)), np.int64)

    def add(self, key: tuple, sums: tuple) -> None:
        """Add a resolution's POLICY_SUMS to its key's row, a new row at the end if the key is new."""
        i = self.index.get(key)
        if i is None:
            i = self._append(key)
        self.numbers[i, _SUMS_AT:] += sums

    def _append(self, key: tuple) -> int:
        i = len(self.index)
        if i == len(self.bot_id):  # full: twice the room, so that appending stays cheap on average
            room = max(2 * i, 16)
            self.numbers, self.bot_id = _grown(self.numbers, room), _grown(self.bot_id, room)
            self.codes = {name: _grown(codes, room) for name, codes in self.codes.items()}
        self.index[key] = i
        found = dict(zip(POLICY_ROW, key, strict=True))
        self.bot_id[i] = found["bot_id"]
        self.numbers[i] = (found["bucket"], found["block"], *[0.0] * len(POLICY_SUMS))
        for name in CODED:
            code_of = self.code_of[name]
            if found[name] not in code_of:
                code_of[found[name]] = len(code_of)
                self.values[name].append(found[name])
            self.codes[name][i] = code_of[found[name]]
        return i

    def table(self) -> CounterTable:
        """The rows as they are now: a copy, which later additions do not move (a few µs at 1,000 rows)."""
        n = len(self.index)
        codes = {name: codes[:n].copy() for name, codes in self.codes.items()}
        values = {name: list(values) for name, values in self.values.items()}
        return CounterTable(self.bot_id[:n].copy(), self.numbers[:n].copy(), codes, values)


def _grown(array: np.ndarray, room: int) -> np.ndarray:
    """`array` with room for `room` rows, its own first."""
    grown = np.zeros((room, *array.shape[1:]), array.dtype)
    grown[: len(array)] = array
    return grown


class Evidence:
    """The pooled counters as arrays, one entry per counter row, with each row's weight in the long window
    (what a condition is adopted on) and the recent one (what drops it), and the candidates' statistics as
    matrix products over them (docs/learning.md, "The adaptive policy")."""

    def __init__(
        self, rows: CounterTable, alike: dict[int, tuple[str, str]], period: timedelta, capacity: int = 1
    ):
        self.capacity = capacity
        self.selection_level = settings.POLICY_FDR  # what `edges` selected at, once it has run
        self.bucket, block_of = rows.numbers[:, 0], rows.numbers[:, 1]
        self.sums = {name: rows.column(name) for name in POLICY_SUMS}
        bots, bot_of = np.unique(rows.bot_id, return_inverse=True)
        buckets, bucket_of = np.unique(self.bucket, return_inverse=True)
        bands = [confidence_band(bucket) for bucket in buckets.tolist()]
        coded = {name: (rows.values[name], rows.codes[name]) for name in CODED}
        coded["confidence_band"] = (bands, bucket_of)
        coded["symbol"] = ([alike[pk][0] for pk in bots.tolist()], bot_of)
        coded["timeframe"] = ([alike[pk][1] for pk in bots.tolist()], bot_of)
        # Each field's values as codes into its distinct values in order (`levels`): the candidates and
        # their masks are read off the codes, not the strings (a relearning at 5,000 hours' counters:
        # 2.9 -> 2.1 ms).
        self.levels, self.codes = {}, {}
        for name, (values, codes) in coded.items():
            self.levels[name], self.codes[name] = _levels(values, codes)
        # When each row's block ended, in the learner's candles; the latest row is now.
        seconds = [TIMEFRAME_PERIODS[timeframe].total_seconds() for timeframe in self.levels["timeframe"]]
        block_seconds = settings.POLICY_BLOCK_CANDLES * np.array(seconds)[self.codes["timeframe"]]
        ends = (block_of + 1) * block_seconds
        # Each row's cluster (`spread`): the rows in cluster order, and where each cluster's rows start in it.
        # A product with a one-hot matrix of rows by clusters did the same sums at a hundred times the cost
        # (every candidate by every row by every cluster), most of a long replay's learning. The rows sorted
        # by when their cluster starts, once, not numbered by np.unique and then sorted by number (making the
        # Evidence at 5,000 hours' counters ~205 -> ~175 µs).
        cluster = ends // (settings.POLICY_CLUSTER_CANDLES * period.total_seconds())
        self.by_cluster = np.argsort(cluster, kind="stable")
        ordered = cluster[self.by_cluster]
        self.cluster_starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        age = (ends.max() - ends) / period.total_seconds()
        self.long = 0.5 ** (age / settings.POLICY_HALF_LIFE_CANDLES)
        self.recent = 0.5 ** (age / settings.POLICY_RECENT_HALF_LIFE_CANDLES)
        # The candles the long window spans, each weighted as a row of its age is (a geometric sum over the
        # blocks from the oldest to now), per bot: how often a set of calls comes up (`value`).
        block, half_life = settings.POLICY_BLOCK_CANDLES, settings.POLICY_HALF_LIFE_CANDLES
        ratio, blocks = 0.5 ** (block / half_life), age.max() // block + 1
        span = block * (1 - ratio**blocks) / (1 - ratio) if ratio < 1 else block * blocks
        self.candles = span * len(bots)

    def candidates(self, with_thresholds: bool) -> list[dict]:
        """Every condition the policy tries: the confidence thresholds, each field's values, and every pair of
        values of two fields that occur together; a field with one value only says nothing."""
        seen = {name: [value for value in levels if value] for name, levels in self.levels.items()}
        present = {name: values for name, values in seen.items() if len(values) > 1}
        found = [{"min_confidence": t} for t in THRESHOLDS] if with_thresholds else []
        found += [{name: value} for name, values in present.items() for value in values]
        for first, second in itertools.combinations(present, 2):
            # The pairs that occur, as one code each, in the order of their first value, then their second:
            # the codes held counted rather than np.unique'd, as in `_levels` (a relearning's 15 pairs of
            # fields at 5,000 hours' counters: the candidates 130 -> 40 µs).
            width = len(self.levels[second])
            for pair in np.flatnonzero(np.bincount(self.codes[first] * width + self.codes[second])).tolist():
                a, b = self.levels[first][pair // width], self.levels[second][pair % width]
                if a and b:
                    found.append({first: a, second: b})
        return found

    def mask(self, conditions: dict) -> np.ndarray:
        """The rows inside `conditions`."""
        return self.masks([conditions])[0]

    def masks(self, candidates: list[dict]) -> np.ndarray:
        """The rows inside each of `candidates`, candidates by rows: each condition compared with the rows
        once, then the rows of every candidate's first condition and-ed in at once, of its second, and so on
        (64 candidates at 5,000 hours' counters: ~200 -> ~90 µs against an array made and and-ed for each)."""
        conditions = dict.fromkeys(item for c in candidates for item in c.items())  # each (field, value) once
        at = {item: i for i, item in enumerate(conditions)}
        # A last row inside everything: what a candidate with fewer conditions than another has for the rest.
        inside = np.array([*itertools.starmap(self._equal, at), np.ones(len(self.bucket), bool)])
        # Each candidate's conditions as a list of rows of `inside`, made before they are taken position by
        # position, so that no iterator per candidate is held open (a hundred and more objects alive at
        # once, which drew the garbage collector's young passes of the replay into this method).
        index = [[at[item] for item in c.items()] for c in candidates]
        found = np.ones((len(candidates), len(self.bucket)), bool)
        for nth in itertools.zip_longest(*index, fillvalue=-1):
            found &= inside[list(nth)]
        return found

    def _equal(self, name: str, value) -> np.ndarray:
        if name == "min_confidence":
            return self.bucket >= value
        levels = self.levels[name]
        return self.codes[name] == (levels.index(value) if value in levels else -1)

    def stats(self, masks: np.ndarray, weights: np.ndarray, robust: bool = True) -> dict[str, np.ndarray]:
        """For each row of `masks` (candidates by counter rows): weighted n, n and mean R; with `robust`,
        also the mean's standard error and one-sided p-values (`spread`)."""
        m = masks.astype(float)
        wn, wr = weights * self.sums["n"], weights * self.sums["r_sum"]
        n = m @ wn
        mean = np.where(n > 0, (m @ wr) / np.where(n > 0, n, 1.0), 0.0)
        found = {"n": n, "raw_n": m @ self.sums["n"], "mean": mean}
        return found | self.spread(masks, weights, found) if robust else found

    def spread(
        self, masks: np.ndarray, weights: np.ndarray, found: dict, rows: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """The standard error of each mean in `found` (`stats` of `masks` and `weights`), its clusters and
        one-sided p-values; only for the rows of `masks` that `rows` selects, if given (the others are left
        as for no calls: no clusters, an infinite standard error, p-values of 1), since the sums per cluster
        are most of what a learning costs and a row that will not be read need not pay them. Calls are not
        independent: made a candle apart they share most of their path, and a trend lifts every call that
        rides it. The standard error is cluster-robust, with the POLICY_CLUSTER_CANDLES around each call as
        its cluster (Liang-Zeger, the mean's sandwich estimate): var(m) = G/(G-1) · Σ_g (S_g - m·N_g)² / N²,
        S_g and N_g the weighted R and n of cluster g, and Student's t with G - 1 degrees of freedom."""
        n, mean = found["n"], found["mean"]
        # What a row without calls, or not selected, is left with: no clusters, no standard error, p of 1.
        spread = {
            "se": np.full(len(n), np.inf),
            "clusters": np.zeros(len(n), np.int64),
            "p_above": np.ones(len(n)),
            "p_below": np.ones(len(n)),
        }
        rows = np.arange(len(n)) if rows is None else np.flatnonzero(rows)
        if not len(rows):  # the recent window's with none in force: 40 -> 5 µs a relearning
            return spread
        wn, wr = weights * self.sums["n"], weights * self.sums["r_sum"]
        # The masks put in cluster order once for both sums, not each product (430 -> 390 µs a call).
        ordered = masks[rows][:, self.by_cluster]
        by_cluster_n = self._per_cluster(ordered * wn[self.by_cluster])
        by_cluster_r = self._per_cluster(ordered * wr[self.by_cluster])
        groups = (by_cluster_n > 0).sum(axis=1)
        squares = ((by_cluster_r - mean[rows, None] * by_cluster_n) ** 2).sum(axis=1)
        several = (groups > 1) & (n[rows] > 0)
        at, g = rows[several], groups[several]
        se = np.sqrt(squares[several] / n[at] ** 2 * g / (g - 1))
        t = mean[at] / np.maximum(se, 1e-300)  # a spread of 0: certain, either way
        spread["clusters"][rows], spread["se"][at] = groups, se
        spread["p_above"][at], spread["p_below"][at] = special.stdtr(g - 1, -t), special.stdtr(g - 1, t)
        return spread

    def _per_cluster(self, values: np.ndarray) -> np.ndarray:
        """The sums of `values` (candidates by counter rows, in cluster order: `by_cluster`) over each
        cluster's rows: candidates by clusters."""
        return np.add.reduceat(values, self.cluster_starts, axis=1)

    def edges(self, kept: list[dict], minimum: int) -> tuple[list[dict], np.ndarray, int, int]:
        """The conditions to trade inside of: greedily, among those adopted (Benjamini-Hochberg across every
        candidate at POLICY_FDR, at least MIN_CLUSTERS clusters, and a positive recent mean over at least
        half the minimum n of recent calls) or in force (until their recent mean is below 0 by more than
        DROP_Z of its standard error), the one that makes the traded set worth the most R a candle (`value`;
        those in force with a head start), while that grows by VALUE_GAIN and what it adds is itself positive
        beyond a standard error. Returns the patterns, the rows they cover, how
        many candidates were tried and how many had the minimum n."""
        candidates = self.candidates(with_thresholds=True)
        masks = self.masks(candidates)
        in_force = np.array([c in kept for c in candidates], bool)
        long = self.stats(masks, self.long, robust=False)
        recent = self.stats(masks, self.recent, robust=False)
        eligible = long["n"] >= minimum
        # The standard errors only where they are read: the long window's of the candidates with the minimum n
        # (what adopts them), the recent window's of those in force (what drops them); a relearning at 5,000
        # hours' counters 2.2 -> 1.6 ms. While none is in force, of those only the ones whose long mean is
        # above 0 (most of an analyst's without an edge: the replay's learn_policy ~0.50 -> ~0.45 s): the
        # others' p-values are at least 0.5, and Benjamini-Hochberg's q-values below 0.5 depend on the
        # p-values below 0.5 only (each q the least, from its own p up, of p times m over its rank, at least
        # 1), so which candidates are selected at POLICY_FDR, and their q-values, are the same with the
        # others' p-values taken as 1.
        shortcut = settings.POLICY_FDR < 0.5 and not in_force.any()
        tested = eligible & (long["mean"] > 0) if shortcut else eligible
        long |= self.spread(masks, self.long, long, tested)
        recent |= self.spread(masks, self.recent, recent, in_force)
        q = np.ones(len(candidates))
        if eligible.any():
            q[eligible] = benjamini_hochberg(long["p_above"][eligible])
        # The level at which a condition selected among these is judged (Benjamini and Yekutieli's
        # false-coverage-rate intervals): POLICY_FDR times the share of the tested conditions selected.
        selected = int((eligible & (q <= settings.POLICY_FDR)).sum())
        self.selection_level = settings.POLICY_FDR * max(selected, 1) / max(int(eligible.sum()), 1)
        # Adopted only on recent calls enough to judge it by (the long window alone would adopt a condition on
        # calls from before a change it has hardly been seen in since: an edge that flipped), and on enough
        # clusters for their standard error to be trusted.
        adopted = (
            (q <= settings.POLICY_FDR)
            & (recent["n"] >= minimum / 2)
            & (recent["mean"] > 0)
            & (long["clusters"] >= MIN_CLUSTERS)
        )
        # Kept until the recent mean is below 0 by more than DROP_Z of its standard error: not on every dip.
        # (Recent calls in one cluster have no standard error: then their mean alone decides.)
        recent_se = np.where(np.isfinite(recent["se"]), recent["se"], 0.0)
        held = in_force & (recent["mean"] + DROP_Z * recent_se > 0)
        allowed = eligible & (adopted | held)
        remaining = list(np.flatnonzero(allowed))
        # The conditions in force compete with a head start, so that the set does not reshuffle with each
        # resolution: another must be worth KEEP_MARGIN more to take a kept one's place.
        start = np.where(in_force[remaining], 1 + KEEP_MARGIN, 1.0)
        chosen, covered, worth = [], np.zeros(len(self.bucket), bool), 0.0
        while remaining and len(chosen) < MAX_PATTERNS:
            added = self.stats(masks[remaining] & ~covered, self.long)
            value = self.value(masks[remaining] | covered)
            value[(added["n"] < minimum) | (added["mean"] <= added["se"])] = -np.inf
            score = np.where(value > 0, value * start, value)
            best = int(np.argmax(score))
            if not score[best] > worth * (1 + VALUE_GAIN):
                break
            chosen.append(remaining.pop(best))
            start = np.delete(start, best)
            covered |= masks[chosen[-1]]
            worth = value[best]
        patterns = [self._pattern(candidates[i], "trade", long, recent, q, i) for i in chosen]
        return patterns, covered, len(candidates), int(eligible.sum())

    def value(self, masks: np.ndarray) -> np.ndarray:
        """R a candle from trading each row of `masks` (sets of calls) at most `capacity` at once: its calls
        come up `rate` a candle; one is taken when a place is free, which, held `hold` candles each (their
        weighted mean, 1 without calls), is a share 1 / (1 + rate · hold / capacity) of the time; each earns
        its mean R. A broad set that takes the place of better calls, or a narrow one that leaves the places
        empty, is worth less than the calls that carry the edge. (The holding time is summed here, the only
        place that reads it, not by every `stats`.)"""
        found, held = self.stats(masks, self.long, robust=False), self.long * self.sums["hold_sum"]
        n = found["n"]
        hold = np.where(n > 0, (masks.astype(float) @ held) / np.where(n > 0, n, 1.0), 1.0)
        rate = n / self.candles
        return found["mean"] * rate / (1 + rate * hold / self.capacity)

    def carve_outs(self, traded: np.ndarray, kept: list[dict], minimum: int) -> tuple[list, np.ndarray, int]:
        """The conditions to avoid inside the traded calls: a field's value or a pair whose calls there lose,
        by the same test (Benjamini-Hochberg at POLICY_FDR, and a negative recent mean), or an avoided one
        whose recent mean is still negative. Tested inside the traded calls only: where nothing is traded
        there is nothing to carve out, and a market without an edge learns no avoid-conditions."""
        if not traded.any():
            return [], np.zeros(len(self.bucket), bool), 0
        candidates = self.candidates(with_thresholds=False)
        if not candidates:
            return [], np.zeros(len(self.bucket), bool), 0
        masks = self.masks(candidates) & traded
        long = self.stats(masks, self.long, robust=False)
        recent = self.stats(masks, self.recent, robust=False)
        eligible = long["n"] >= minimum
        long |= self.spread(masks, self.long, long, eligible)  # only where it is read, as in `edges`
        q = np.ones(len(candidates))
        if eligible.any():
            q[eligible] = benjamini_hochberg(long["p_below"][eligible])
        chosen = [
            i
            for i, c in enumerate(candidates)
            if eligible[i] and recent["mean"][i] < 0 and (q[i] <= settings.POLICY_FDR or c in kept)
        ]
        avoided = np.zeros(len(self.bucket), bool)
        for i in chosen:
            avoided |= masks[i]
        patterns = [self._pattern(candidates[i], "avoid", long, recent, q, i) for i in chosen]
        return patterns, avoided, len(candidates)

    def calibration(self, rows: np.ndarray) -> Calibration | None:
        """The stated confidence calibrated on the traded calls (`rows`): isotonic over their confidence
        buckets, each its share of positive R weighted by its weighted n (learning.calibration)."""
        weights = self.long[rows]
        buckets, which = np.unique(self.bucket[rows], return_inverse=True)
        n = np.bincount(which, weights * self.sums["n"][rows], len(buckets))
        wins = np.bincount(which, weights * self.sums["wins"][rows], len(buckets))
        keep = n > 0
        return fit_calibration(buckets[keep] + 2.5, wins[keep] / n[keep], n[keep])  # a bucket's middle

    def totals(self, rows: np.ndarray) -> dict:
        """The long-window weighted sums over `rows`, as the Kelly stake reads them."""
        w = self.long * rows
        return {name: float(w @ self.sums[name]) for name in ("n", "wins", "win_r", "losses", "loss_r")}

    def summary(self, rows: np.ndarray) -> dict:
        """n, mean and 95 % interval of `rows`, and the lower bound at the level its conditions were selected
        at (`edges`): one-sided, Student's t with the clusters less one degrees of freedom."""
        found = self.stats(rows[np.newaxis, :], self.long)
        t = special.stdtrit(max(int(found["clusters"][0]) - 1, 1), 1 - self.selection_level)
        low = float(found["mean"][0] - t * found["se"][0])
        return {"n": int(found["raw_n"][0]), **_interval(found, 0), "low_selected": _round(low)}

    @staticmethod
    def _pattern(conditions: dict, action: str, long: dict, recent: dict, q: np.ndarray, i: int) -> dict:
        return {
            "conditions": conditions,
            "action": action,
            "n": int(long["raw_n"][i]),
            "clusters": int(long["clusters"][i]),
            **_interval(long, i),
            "p_value": _round(long["p_above" if action == "trade" else "p_below"][i]),
            "q_value": _round(q[i]),
            "recent_r": _round(recent["mean"][i]),
        }


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """The Benjamini-Hochberg adjusted p-values (q-values) of `p`: scipy.stats.false_discovery_control(p,
    method="bh")'s operations in its order, without its input checks and array-API dispatch, which cost
    fifteen times the sum itself (a relearning's ~60 p-values: ~150 -> ~9 µs)."""
    order = np.argsort(p)
    m = len(p)
    adjusted = p[order] * (m / np.arange(1.0, m + 1))
    # The least of each one's and every larger p's: Benjamini-Hochberg's step-up, from the largest down.
    np.minimum.accumulate(adjusted[::-1], out=adjusted[::-1])
    q = np.empty(m)
    q[order] = adjusted
    return np.clip(q, 0.0, 1.0)


def _levels(values: list, codes: np.ndarray) -> tuple[list, np.ndarray]:
    """The distinct values the rows hold, in order, and each row's code into them (`codes`: each row's
    index into `values`, which may hold more, and the same value more than once)."""
    # The codes held counted rather than np.unique'd (sorting them: 6 fields a relearning, 33 -> 2.5 µs each).
    present = np.flatnonzero(np.bincount(codes, minlength=len(values)))
    held = [values[i] for i in present.tolist()]
    levels = sorted(set(held))
    rank = {value: i for i, value in enumerate(levels)}
    recoded = np.zeros(len(values), np.int64)
    recoded[present] = [rank[value] for value in held]
    return levels, recoded[codes]


def _interval(found: dict, i: int) -> dict:
    mean, se = float(found["mean"][i]), float(found["se"][i])
    return {"expectancy_r": _round(mean), "low": _round(mean - Z95 * se), "high": _round(mean + Z95 * se)}


def _key(conditions: dict) -> tuple:
    return tuple(sorted(conditions.items()))


def next_policy(bot, current: LearnedPolicy | None, values: dict, sizes: dict, window: dict):
    """(the policy to keep, whether it is new): the same decisions on more data update the latest's
    evidence and data window, in place; other decisions are a new version, keeping the owner's pins."""
    if current and _same_decisions(current, values):
        current.avoid_conditions, current.patterns = values["avoid_conditions"], values["patterns"]
        current.sample_sizes = sizes
        for name, value in window.items():
            setattr(current, name, value)
        return current, False
    pins = current.pins if current else {}
    return LearnedPolicy(bot=bot, pins=pins, sample_sizes=sizes, **values, **window), True


def policy_calls(**scope):
    """The resolved calls a policy learns from: BUY/SELL with a result in R and a stated confidence."""
    return AILearningData.objects.filter(
        **scope, recommendation__in=BUY_OR_SELL, outcome_r__isnull=False, confidence_score__isnull=False
    )


def pool(bot, alike: list[int], counters: CounterTable, minimum: int) -> tuple[CounterTable, list[int], dict]:
    """Pooled learning: the owner's bots with the same analyst (its confidence means the same thing) learn
    from each other's calls, across symbols and regimes, so that a new bot does not start from nothing and
    a thin history borrows strength. A bot keeps to its own calls once it has `minimum` of them and their
    mean result differs from the other bots' beyond noise (Welch's interval at 95 %): its market is not the
    others'. Returns the counters to learn from, whose bots they are, and why."""
    is_own = counters.bot_id == bot.pk
    own = counters if is_own.all() else counters[is_own]  # a bot alone: its rows as they are, not a copy
    mine, theirs = _mean_r(own), _mean_r(counters[~is_own])
    pooling = {"own": mine, "others": theirs}
    if not theirs["n"]:
        return (
            own,
            [bot.pk],
            {**pooling, "source": "own", "why": "no other bot of the owner's with this analyst"},
        )
    if mine["n"] < minimum:
        return (
            counters,
            alike,
            {**pooling, "source": "pooled", "why": f"fewer than {minimum} calls of its own"},
        )
    spread = Z95 * math.sqrt(mine["variance"] / mine["n"] + theirs["variance"] / theirs["n"])
    if abs(mine["mean_r"] - theirs["mean_r"]) > spread:
        return (
            own,
            [bot.pk],
            {**pooling, "source": "own", "why": "its calls' mean result differs from the others'"},
        )
    return counters, alike, {**pooling, "source": "pooled", "why": "its calls' mean result is the others'"}


def _mean_r(rows: CounterTable) -> dict:
    n = rows.calls()
    if not n:
        return {"n": 0, "mean_r": None, "variance": 0.0}
    # Summed exactly (fsum): the rows come in another order from the database than from a replay's books,
    # and a plain sum's last bit could then round a mean on a tie (0.35445) two ways.
    mean = math.fsum(rows.column("r_sum").tolist()) / n
    squares = math.fsum(rows.column("r_squares").tolist())
    variance = (squares - n * mean * mean) / (n - 1) if n > 1 else 0.0
    return {"n": n, "mean_r": _round(mean), "variance": _round(max(variance, 0.0))}


def _same_decisions(policy: LearnedPolicy, values: dict) -> bool:
    def avoided(conditions: list[dict]) -> set:
        return {(c["field"], c["value"]) for c in conditions}

    def patterns(found: list[dict]) -> set:
        return {(p["action"], _key(p["conditions"])) for p in found}

    return (
        policy.min_confidence == values["min_confidence"]
        and policy.size_factor == values["size_factor"]
        and avoided(policy.avoid_conditions) == avoided(values["avoid_conditions"])
        and patterns(policy.patterns) == patterns(values["patterns"])
    )


def describe_policy(bot) -> dict:
    """The policy the bot's decisions use now, with where it came from and the owner's pins."""
    latest = latest_policy(bot)
    policy = effective_policy(bot, latest)
    return {
        "min_confidence": policy.min_confidence,
        "size_factor": policy.size_factor,
        "avoid_conditions": policy.avoid_conditions,
        "patterns": [
            {**p, "text": f"{p['action']}s when {describe(p['conditions'])} ({evidence_text(p)})"}
            for p in policy.patterns
        ],
        "learned": policy.learned,
        "pins": latest.pins if latest else {},
        "data_from": latest.data_from if latest else None,
        "data_to": latest.data_to if latest else None,
        "sample_sizes": latest.sample_sizes if latest else {},
    }


def avoid_condition_error(condition) -> str:
    """Why `condition` cannot be pinned as an avoid-condition, or "": it must be an object naming an avoidable
    field and one of that field's values, as the cycle's decision compares them (a pinned `null` or a
    misspelt value failed every later cycle, or never matched)."""
    if not isinstance(condition, dict) or set(condition) != {"field", "value"}:
        return 'Each avoid-condition is an object with exactly "field" and "value".'
    if condition["field"] not in AVOIDABLE:
        return f"Unknown field {condition['field']!r}: one of {', '.join(AVOIDABLE)}."
    if condition["value"] not in AVOIDABLE[condition["field"]]:
        allowed = ", ".join(AVOIDABLE[condition["field"]])
        return f"Unknown {condition['field']} {condition['value']!r}: one of {allowed}."
    return ""


def pin(bot, **values) -> LearnedPolicy:
    """Fix policy values by hand (None unpins). They override whatever is learned later."""
    unknown = set(values) - set(PINNABLE)
    if unknown:
        raise ValueError(f"cannot pin {', '.join(sorted(unknown))}; pinnable: {', '.join(PINNABLE)}")
    if values.get("avoid_conditions") is not None:
        errors = list(filter(None, map(avoid_condition_error, values["avoid_conditions"])))
        if errors:
            raise ValueError(errors[0])
    current = latest_policy(bot)
    if current is None:
        current = LearnedPolicy.objects.create(bot=bot, min_confidence=float(bot.min_confidence))
    pins = {**current.pins, **values}
    current.pins = {name: value for name, value in pins.items() if value is not None}
    current.save(update_fields=["pins"])
    return current


def _size_factor(taken: dict, bot, traded: dict) -> tuple[float, dict]:
    """A fraction of the Kelly stake, over the bot's risk per trade, capped: 1.0 risks what the bot's setting
    says, 0 means no edge. Kelly f* = p - (1 - p) / b, p the hit rate of the calls the policy trades and b
    their mean win over their mean loss, both in R (`taken`: their weighted sums, Evidence.totals), shrunk
    by how sure the edge is: times low / mean, `low` their expectancy's lower bound at the level their
    conditions were selected at (`traded["low_selected"]`, Evidence.summary), 0 at the edge of
    significance and near 1 when the evidence is far beyond it, so that a condition adopted on thin
    evidence, which may be noise that passed, is traded small; but never below the probe size, which a bot
    trades at before it knows anything."""
    n, wins, losses = taken["n"], taken["wins"], taken["losses"]
    if not n:
        return 0.0, {"n": 0}
    mean_win = taken["win_r"] / wins if wins else None
    mean_loss = taken["loss_r"] / losses if losses else None
    p = wins / n
    if not mean_loss:
        kelly = 1.0 if mean_win else 0.0  # never lost: as much as the cap allows
    elif not mean_win:
        kelly = 0.0
    else:
        kelly = p - (1 - p) / (mean_win / -mean_loss)
    mean, low = traded["expectancy_r"], traded["low_selected"]
    sure = min(1.0, max(0.0, low / mean)) if mean and mean > 0 and low is not None else 0.0
    base_risk = float(bot.risk_per_trade_pct) / 100
    factor = min(settings.SIZE_FACTOR_CAP, settings.KELLY_FRACTION * kelly * sure / base_risk)
    factor = max(settings.POLICY_PROBE_SIZE, factor) if kelly > 0 else 0.0
    evidence = {
        "n": _round(n),
        "hit_rate": _round(p),
        "mean_win_r": _round(mean_win),
        "mean_loss_r": _round(mean_loss),
        "kelly": _round(kelly),
        "sure": _round(sure),
    }
    return round(factor, 4), evidence


def _round(value) -> float | None:
    """4 places; None for nothing, or for no bound (a standard error from a single cluster is infinite, and
    JSON has no infinity)."""
    return None if value is None or not math.isfinite(value) else round(float(value), 4)
