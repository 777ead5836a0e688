"""The self-improving part of the analyst's prompt (docs/learning.md): what the bot's resolved
analyses say, citing only figures with enough samples. Each distinct prompt
(the instructions with this section, figures masked) is stored once as a PromptVersion, by its hash, and
every analysis points at the version it was given and keeps the exact section, so versions can be compared."""

import hashlib
import re

from django.db import IntegrityError, transaction

from .conditions import describe, evidence_text
from .models import PromptVersion

# The analyst's instructions, the fixed part of every prompt. Defined here, with the versions that hash it
# with the learned section, so that learning reads it without importing the analysts above it.
SYSTEM = """You are a disciplined trading analyst. You are shown a candlestick chart and the indicator values
of its last closed candle. Give one analysis of what is most likely over the next candles.

Rules:
- Recommend BUY or SELL only when the chart and the numbers agree; otherwise HOLD.
- For BUY: stop_loss < entry < take_profit. For SELL: take_profit < entry < stop_loss. For HOLD: entry,
  stop_loss and take_profit are null.
- Confidence is your honest probability (0-100) that the recommendation works out; 50 means a coin flip.
- predicted_price is where you expect the price after `horizon` candles.
- Prices are in the quote currency, with the precision of the chart."""

NUMBER = re.compile(r"\d+(?:\.\d+)?")


def insights_section(insights: dict | None, patterns: list[dict] = ()) -> str:
    """Empty until there is something learned to say. `patterns`: the policy's (LearnedPolicy.patterns),
    cited with their evidence, since they decide which calls are traded."""
    if not insights:
        return ""
    minimum = insights["min_samples"]
    accuracy = insights["accuracy"]
    if accuracy["n"] < minimum:
        return ""
    lines = [
        f"Based on {accuracy['n']} previous analyses whose outcome is known:",
        f"- Your accuracy is currently {_pct(accuracy['rate'])} "
        f"(95% interval {_pct(accuracy['low'])}-{_pct(accuracy['high'])}).",
    ]
    if best := insights.get("best_timeframe"):
        lines.append(f"- You perform best on {best['group']} charts ({_pct(best['rate'])}, n={best['n']}).")
    if cut := insights.get("failing_below"):
        below = cut["below"]
        lines.append(
            f"- Avoid trades when confidence < {cut['confidence']}: those calls were right "
            f"{_pct(below['rate'])} of the time (n={below['n']})."
        )
    high = next((row for row in insights["by_confidence"] if row["group"] == ">75"), None)
    if high and high["n"] >= minimum:
        lines.append(
            f"- When you were more than 75% confident you were right {_pct(high['rate'])} (n={high['n']})."
        )
    worked = [
        f"{dimension} {row['group']} ({_pct(row['rate'])}, n={row['n']})"
        for dimension in ("sentiment", "regime")
        for row in insights[f"by_{dimension}"]
        if row["n"] >= minimum and row["low"] > accuracy["rate"]
    ]
    if worked:
        lines.append(f"- Focus on these successful patterns: {'; '.join(worked)}.")
    for failure in insights.get("failures", [])[:3]:
        lines.append(f"- Weak spot: {failure['text']}.")
    for p in patterns:
        verb = "Your calls are traded when" if p["action"] == "trade" else "Your calls are not traded when"
        lines.append(f"- {verb} {describe(p['conditions'])} ({evidence_text(p)}).")
    return "\n".join(lines)


def prompt_version(section: str) -> PromptVersion:
    """The stored version of the instructions with this insights section, its figures masked: a version per
    change of what the prompt says, not per new figure (which would be one per resolved analysis)."""
    text = prompt_text(section)
    digest = hashlib.sha256(text.encode()).hexdigest()
    found = PromptVersion.objects.filter(sha256=digest).first()
    if found:
        return found
    try:
        with transaction.atomic():
            return PromptVersion.objects.create(sha256=digest, text=text)
    except IntegrityError:  # another worker stored it first
        return PromptVersion.objects.get(sha256=digest)


def prompt_text(section: str) -> str:
    """What a prompt version holds: the instructions and the section with its figures masked."""
    return f"{SYSTEM}\n\n{NUMBER.sub('#', section)}".strip()


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.0f}%"
