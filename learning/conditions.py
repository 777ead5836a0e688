"""The market conditions a call is described by, for the policy's patterns ("RSI < 30 AND sentiment BULLISH →
…", the seed's words): each a field with a few values, read from what the analysis recorded. One place, so
that the policy, its counters, the prompt and the learning benchmark (bench/bench_learning.py) cut the same
bands."""

# RSI in the bands a trader reads it in: oversold, weak, strong, overbought.
RSI_BANDS = ("<30", "30-50", "50-70", ">=70")
# Stated confidence in the bands the patterns use (the threshold itself is learned in fives).
CONFIDENCE_BANDS = ("<60", "60-70", "70-80", ">=80")
FIELDS = ("regime", "market_sentiment", "rsi_band", "confidence_band", "symbol", "timeframe")


def rsi_band(rsi: float | None) -> str:
    if rsi is None:
        return ""
    return "<30" if rsi < 30 else "30-50" if rsi < 50 else "50-70" if rsi < 70 else ">=70"


def confidence_band(confidence: float | None) -> str:
    if confidence is None:
        return ""
    if confidence < 60:
        return "<60"
    return "60-70" if confidence < 70 else "70-80" if confidence < 80 else ">=80"


def conditions_of(record) -> dict[str, str]:
    """The fields of FIELDS for a recorded analysis (an AILearningData, saved or not)."""
    return {
        "regime": record.regime,
        "market_sentiment": record.market_sentiment,
        "rsi_band": rsi_band((record.market_conditions or {}).get("rsi")),
        "confidence_band": confidence_band(record.confidence_score),
        "symbol": record.symbol,
        "timeframe": record.timeframe,
    }


def matches(conditions: dict, pattern: dict) -> bool:
    """Whether a call with `conditions` (conditions_of, plus its "confidence") falls inside `pattern`: every
    field of the pattern has the call's value; "min_confidence" is a floor on the stated confidence."""
    for name, value in pattern.items():
        if name == "min_confidence":
            if (conditions.get("confidence") or 0) < value:
                return False
        elif conditions.get(name) != value:
            return False
    return True


def describe(conditions: dict) -> str:
    """A pattern's conditions as a trader reads them: "regime TREND_HIGH_VOL and RSI 50-70"."""
    names = {"min_confidence": "confidence ≥", "market_sentiment": "sentiment", "rsi_band": "RSI",
             "confidence_band": "confidence"}  # fmt: skip
    return " and ".join(f"{names.get(name, name)} {value}" for name, value in conditions.items())


def evidence_text(pattern: dict) -> str:
    """A learned pattern's evidence: its expectancy with the interval, n and the q-value of its test."""
    p = pattern
    interval = (
        f"95% CI {p['low']:+.2f} to {p['high']:+.2f}"
        if p.get("low") is not None and p.get("high") is not None
        else "no interval: one cluster of calls"
    )
    return f"{p['expectancy_r']:+.2f} R a call, {interval}, n={p['n']}, q={p['q_value']:.3f}"
