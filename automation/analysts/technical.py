"""The offline analyst: the same Analysis an LLM would give, derived deterministically from the indicators.
It is the default without an OpenAI key and the analyst of tests and replays, so it must be reproducible:
the same candles give the same analysis, always."""

from core.values import Recommendation
from market.indicators import Indicators

from .base import OPERATOR, AnalysisRequest, AnalystResult
from .schema import Analysis, KeyLevels

# Each factor votes in [-1, 1]; the weights say how much a trader would trust it.
WEIGHTS = {"trend": 0.35, "ema_stack": 0.2, "macd": 0.25, "rsi": 0.2}
# |score| needed to act, and to call a sentiment.
ACT_THRESHOLD, SENTIMENT_THRESHOLD = 0.35, 0.2
RSI_OVERBOUGHT, RSI_OVERSOLD = 70.0, 30.0
# Stop 1.5 ATR away, target twice as far: a 2:1 reward-to-risk setup.
STOP_ATR, TARGET_ATR = 1.5, 3.0
HORIZON = 10  # candles


def _sign(x: float) -> float:
    return (x > 0) - (x < 0)


def factors(ind: Indicators) -> dict[str, float]:
    votes: dict[str, float] = {}
    if ind.ema50 is not None:
        votes["trend"] = _sign(ind.close - ind.ema50)
    if ind.ema20 is not None and ind.ema50 is not None:
        stack = _sign(ind.ema20 - ind.ema50)
        if ind.ema200 is not None:
            stack = (stack + _sign(ind.ema50 - ind.ema200)) / 2
        votes["ema_stack"] = stack
    if ind.macd_hist is not None:
        votes["macd"] = _sign(ind.macd_hist)
    if ind.rsi is not None:
        # Momentum in the middle of the band; a stretched RSI votes against chasing the move.
        if ind.rsi >= RSI_OVERBOUGHT:
            votes["rsi"] = -0.5
        elif ind.rsi <= RSI_OVERSOLD:
            votes["rsi"] = 0.5
        else:
            votes["rsi"] = (ind.rsi - 50) / 20
    return votes


def score(votes: dict[str, float]) -> float:
    total = sum(WEIGHTS[k] for k in votes)
    return sum(WEIGHTS[k] * v for k, v in votes.items()) / total if total else 0.0


def analyse_indicators(ind: Indicators) -> Analysis:
    votes = factors(ind)
    s = round(score(votes), 6)
    sentiment = (
        "BULLISH" if s >= SENTIMENT_THRESHOLD else "BEARISH" if s <= -SENTIMENT_THRESHOLD else "NEUTRAL"
    )
    recommendation = "HOLD"
    if ind.atr:
        if s >= ACT_THRESHOLD and (ind.rsi or 50) < RSI_OVERBOUGHT:
            recommendation = "BUY"
        elif s <= -ACT_THRESHOLD and (ind.rsi or 50) > RSI_OVERSOLD:
            recommendation = "SELL"

    entry = stop = target = None
    predicted = ind.close
    if recommendation != Recommendation.HOLD:
        direction = 1 if recommendation == Recommendation.BUY else -1
        entry = ind.close
        stop = round(entry - direction * STOP_ATR * ind.atr, 10)
        target = round(entry + direction * TARGET_ATR * ind.atr, 10)
        predicted = target
    elif ind.atr:
        predicted = round(ind.close + s * ind.atr, 10)

    # Confidence that the call works out: a strong score makes a trade likelier to work and a HOLD (one the
    # RSI vetoed, say) less likely to be the right call.
    confidence = round(50 + 45 * abs(s)) if recommendation != Recommendation.HOLD else round(50 - 30 * abs(s))
    regime = ind.regime.lower().replace("_", " ")
    described = ", ".join(f"{name} {vote:+.2f}" for name, vote in votes.items())
    return Analysis(
        summary=f"{sentiment.capitalize()} reading (score {s:+.2f}) in a {regime} market.",
        market_sentiment=sentiment,
        key_levels=KeyLevels(support=list(ind.support), resistance=list(ind.resistance)),
        recommendation=recommendation,
        confidence=confidence,
        reasoning=(
            f"Weighted votes: {described or 'none (too few candles)'}. Score {s:+.2f}; acting needs "
            f"|score| ≥ {ACT_THRESHOLD} and an RSI that is not stretched the same way (RSI {ind.rsi:.1f})."
        ),
        entry=entry,
        stop_loss=stop,
        take_profit=target,
        predicted_price=predicted,
        horizon=HORIZON,
    )


class TechnicalAnalyst:
    name = "technical"
    billed_to = OPERATOR

    def analyse(self, request: AnalysisRequest) -> AnalystResult:
        return AnalystResult(
            analysis=analyse_indicators(request.indicators), analyst=self.name, model_name="technical-v1"
        )
