"""The analyst's prompt: the numeric context of the chart and what was learned so far; the instructions
(`learning.prompt.SYSTEM`) go with it as the system message."""

from .base import AnalysisRequest


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) or "none"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def context_text(request: AnalysisRequest) -> str:
    m, ind = request.market, request.indicators
    lines = [
        f"Market: {m.symbol} on {m.exchange}, {m.timeframe} candles. Last closed candle opened {ind.time}.",
        f"Close {_fmt(ind.close)}. RSI(14) {_fmt(ind.rsi)}. MACD {_fmt(ind.macd)},"
        f" signal {_fmt(ind.macd_signal)}, histogram {_fmt(ind.macd_hist)}.",
        f"EMA20 {_fmt(ind.ema20)}, EMA50 {_fmt(ind.ema50)}, EMA200 {_fmt(ind.ema200)}."
        f" ATR(14) {_fmt(ind.atr)}.",
        f"Bollinger(20,2): {_fmt(ind.bb_lower)} / {_fmt(ind.bb_middle)} / {_fmt(ind.bb_upper)}."
        f" Volume z-score {_fmt(ind.volume_z)}. ADX(14) {_fmt(ind.adx)}; regime {ind.regime}.",
        f"Swing-pivot support: {_fmt(ind.support)}. Resistance: {_fmt(ind.resistance)}.",
    ]
    return "\n".join(lines)


def build_prompt(request: AnalysisRequest) -> str:
    """The user message's text. The insights section comes first, so the model reads what
    worked before it reads the chart; it is left out while there is nothing learned to say."""
    parts = []
    if request.insights.strip():
        parts.append("What your past analyses of this bot taught:\n" + request.insights.strip())
    parts.append(context_text(request))
    parts.append("Now analyse the chart.")
    return "\n\n".join(parts)
