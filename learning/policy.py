"""The adaptive trading policy: what a bot's resolved analyses say about when to trade and how big,
learned with database aggregates and stored with its provenance; the owner's pins override any of it.
Formulas: docs/learning.md."""

import math
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min

from core.values import BUY_OR_SELL, Regime, Sentiment

from .counters import POLICY_SUMS
from .insights import Z95
from .models import AILearningData, LearnedPolicy, PolicyCounter

THRESHOLDS = tuple(range(50, 95, 5))  # the minimum confidences tried
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

    def avoids(self, conditions: dict) -> dict | None:
        """The avoid-condition these market conditions fall under, if any."""
        return next((c for c in self.avoid_conditions if conditions.get(c["field"]) == c["value"]), None)


def latest_policy(bot) -> LearnedPolicy | None:
    return LearnedPolicy.objects.filter(bot=bot).order_by("-created_at", "-pk").first()


def effective_policy(bot, latest: LearnedPolicy | None = None) -> Policy:
    """`latest`: the bot's latest LearnedPolicy, when the caller has it already."""
    latest = latest or latest_policy(bot)
    if latest is None:
        return Policy(min_confidence=float(bot.min_confidence))
    values = {
        "min_confidence": latest.min_confidence,
        "size_factor": latest.size_factor,
        "avoid_conditions": latest.avoid_conditions,
    }
    return Policy(**{**values, **latest.pins}, learned=bool(latest.sample_sizes.get("learned")))


def learn_policy(bot) -> LearnedPolicy:
    """Learn the bot's policy from resolved BUY/SELL analyses (traded or not), its own or pooled with the
    owner's other bots (`pool`), read from their running totals (PolicyCounter), so that learning costs the
    same on the thousandth day as on the first; store it if it differs from the latest, else bring the
    latest's data window and sample sizes up to date."""
    with transaction.atomic():
        return keep_policy(*relearn(bot, latest_policy(bot), *policy_counters(bot), policy_window))


def relearn(bot, current: LearnedPolicy | None, alike: list[int], counters: list[dict], window_of):
    """(the policy to keep, whether it is new) from the policy counters of the owner's bots `alike` with the
    bot, wherever they are kept (the database, a replay's books); `window_of(bot_ids)` is the data window
    of the bots it learned from (`policy_window`)."""
    values, sizes, bot_ids = policy_from(bot, alike, counters)
    return next_policy(bot, current, values, sizes, window_of(bot_ids))


def policy_counters(bot) -> tuple[list[int], list[dict]]:
    """The owner's bots with the bot's analyst, and their PolicyCounter rows: what `policy_from` pools."""
    alike = list(
        type(bot).objects.filter(owner_id=bot.owner_id, analyst=bot.analyst).values_list("pk", flat=True)
    )
    counters = list(
        PolicyCounter.objects.filter(user_id=bot.owner_id, bot_id__in=alike).values(
            "bot_id", "bucket", "regime", "market_sentiment", *POLICY_SUMS
        )
    )
    return alike, counters


def policy_window(bot_ids: list[int]) -> dict:
    """The earliest and the latest resolved call of the bots a policy learned from: its data window."""
    return policy_calls(bot_id__in=bot_ids).aggregate(
        data_from=Min("resolved_at"), data_to=Max("resolved_at")
    )


def keep_policy(policy: LearnedPolicy, new: bool) -> LearnedPolicy:
    """Store what `next_policy` gave: a new version, or the latest's evidence and window made current."""
    if new:
        policy.save()
    else:
        policy.save(update_fields=["avoid_conditions", "sample_sizes", "data_from", "data_to"])
    return policy


def policy_from(bot, alike: list[int], counters: list[dict]) -> tuple[dict, dict, list[int]]:
    """The policy's values and their evidence from the PolicyCounter rows of the owner's bots with the
    bot's analyst (`alike`), and the bots whose calls it learned from."""
    minimum = settings.LEARNING_MIN_SAMPLES
    rows, bot_ids, pooling = pool(bot, alike, counters, minimum)
    table = [{"threshold": t, **_expectancy([r for r in rows if r["bucket"] >= t])} for t in THRESHOLDS]
    usable = [row for row in table if row["n"] >= minimum]
    learned = bool(usable)
    values = {"min_confidence": float(bot.min_confidence), "size_factor": 1.0, "avoid_conditions": []}
    total = sum(r["n"] for r in rows)
    sizes = {"learned": learned, "resolved": total, "thresholds": table, "pooling": pooling}
    if learned:
        # The best expectancy; on a tie the lower threshold, which trades, and learns, more.
        best = max(usable, key=lambda row: (row["expectancy_r"], -row["threshold"]))
        taken = [r for r in rows if r["bucket"] >= best["threshold"]]
        values["min_confidence"] = float(best["threshold"])
        values["size_factor"], sizes["kelly"] = _size_factor(taken, bot)
        values["avoid_conditions"] = _avoid_conditions(taken, minimum)
        sizes["at_threshold"] = best["n"]
    return values, sizes, bot_ids


def next_policy(bot, current: LearnedPolicy | None, values: dict, sizes: dict, window: dict):
    """(the policy to keep, whether it is new): the same decisions on more data update the latest's
    evidence and data window, in place; other decisions are a new version, keeping the owner's pins."""
    if current and _same_decisions(current, values):
        current.avoid_conditions, current.sample_sizes = values["avoid_conditions"], sizes
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


def pool(bot, alike: list[int], counters: list[dict], minimum: int) -> tuple[list[dict], list[int], dict]:
    """Pooled learning: the owner's bots with the same analyst (its confidence means the same thing) learn
    from each other's calls, across symbols and regimes, so that a new bot does not start from nothing and
    a thin history borrows strength. A bot keeps to its own calls once it has `minimum` of them and their
    mean result differs from the other bots' beyond noise (Welch's interval at 95 %): its market is not the
    others'. Returns the counters to learn from, whose bots they are, and why."""
    own = [r for r in counters if r["bot_id"] == bot.pk]
    mine, theirs = _mean_r(own), _mean_r([r for r in counters if r["bot_id"] != bot.pk])
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


def _mean_r(rows: list[dict]) -> dict:
    n = sum(r["n"] for r in rows)
    if not n:
        return {"n": 0, "mean_r": None, "variance": 0.0}
    mean = sum(r["r_sum"] for r in rows) / n
    squares = sum(r["r_squares"] for r in rows)
    variance = (squares - n * mean * mean) / (n - 1) if n > 1 else 0.0
    return {"n": n, "mean_r": _round(mean), "variance": _round(max(variance, 0.0))}


def _expectancy(rows: list[dict]) -> dict:
    n = sum(r["n"] for r in rows)
    return {"n": n, "expectancy_r": _round(sum(r["r_sum"] for r in rows) / n) if n else None}


def _same_decisions(policy: LearnedPolicy, values: dict) -> bool:
    def avoided(conditions: list[dict]) -> set:
        return {(c["field"], c["value"]) for c in conditions}

    return (
        policy.min_confidence == values["min_confidence"]
        and policy.size_factor == values["size_factor"]
        and avoided(policy.avoid_conditions) == avoided(values["avoid_conditions"])
    )


def describe_policy(bot) -> dict:
    """The policy the bot's decisions use now, with where it came from and the owner's pins."""
    latest = latest_policy(bot)
    policy = effective_policy(bot, latest)
    return {
        "min_confidence": policy.min_confidence,
        "size_factor": policy.size_factor,
        "avoid_conditions": policy.avoid_conditions,
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


def _size_factor(taken: list[dict], bot) -> tuple[float, dict]:
    """A fraction of the Kelly stake, over the bot's risk per trade, capped: 1.0 risks what the bot's setting
    says, 0 means no edge. Kelly f* = p - (1 - p) / b, p the hit rate above the threshold and b the mean win
    over the mean loss, both in R."""
    n, wins, losses = (sum(r[name] for r in taken) for name in ("n", "wins", "losses"))
    mean_win = sum(r["win_r"] for r in taken) / wins if wins else None
    mean_loss = sum(r["loss_r"] for r in taken) / losses if losses else None
    p = wins / n
    if not mean_loss:
        kelly = 1.0 if mean_win else 0.0  # never lost: as much as the cap allows
    elif not mean_win:
        kelly = 0.0
    else:
        kelly = p - (1 - p) / (mean_win / -mean_loss)
    base_risk = float(bot.risk_per_trade_pct) / 100
    factor = min(settings.SIZE_FACTOR_CAP, max(0.0, settings.KELLY_FRACTION * kelly / base_risk))
    evidence = {
        "n": n,
        "hit_rate": _round(p),
        "mean_win_r": _round(mean_win),
        "mean_loss_r": _round(mean_loss),
        "kelly": _round(kelly),
    }
    return round(factor, 4), evidence


def _avoid_conditions(taken: list[dict], minimum: int) -> list[dict]:
    avoid = []
    for column in AVOIDABLE:
        for value in sorted({r[column] for r in taken}):
            found = _expectancy([r for r in taken if r[column] == value])
            if found["n"] >= minimum and found["expectancy_r"] < 0:
                avoid.append({"field": column, "value": value, **found})
    return avoid


def _round(value) -> float | None:
    return None if value is None else round(float(value), 4)
