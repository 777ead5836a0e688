"""The price chart of the bot and trade pages: the market's candles with the bot's trades (entry, stop-loss,
take-profit, exit) and its analyses' calls, as Plotly figure data drawn by static/js/price_chart.js.

Times on the chart are market times: a trade's fill and exit (`execution_time`, `closed_at`) and an
analysis's slot (`cycle_run.slot`), which a replay sets on its simulated clock, not the wall-clock
`created_at` its rows were written at."""

import html
import textwrap
from datetime import datetime

from django.utils import timezone

from learning.models import AILearningData
from market.errors import MarketDataError
from market.exchanges import source_for
from market.sources import Market

# The bot page shows its latest stretch; the trade page the trade with some market before and after it.
BOT_CANDLES = 200
BEFORE_ENTRY, AFTER_EXIT = 40, 20
# However long a trade was held, a page carries at most this many candles (its last ones).
MAX_CANDLES = 500
# The bot page's window ends this many candles after the bot's latest slot or exit, to show what followed.
AFTER_LATEST = 10
REASONING_EXCERPT = 200  # characters of the analyst's reasoning in a call's hover text
HOVER_LINE = 60  # characters a hover line holds, so that the box fits a phone

UP, DOWN, NEUTRAL = "#127a3e", "#b42318", "#6b7280"
STOP, TARGET = "#b42318", "#127a3e"


def bot_chart(bot) -> dict:
    """The bot's market up to its latest activity, BOT_CANDLES candles, with its trades and calls."""
    market = Market(bot.exchange, bot.symbol, bot.timeframe)
    return _chart(bot, market, until=_latest(bot, market), limit=BOT_CANDLES)


def _latest(bot, market: Market) -> datetime:
    """AFTER_LATEST candles past the bot's latest slot, fill or exit, or now if sooner: the market's own
    present, which for a stored market run over past slots (a replay, the demo's history) is not the wall
    clock's."""
    moments = [
        bot.runs.order_by("-slot").values_list("slot", flat=True).first(),
        *(
            bot.trades.exclude(**{f"{field}__isnull": True})
            .order_by(f"-{field}")
            .values_list(field, flat=True)
            .first()
            for field in ("execution_time", "closed_at")
        ),
    ]
    moments = [moment for moment in moments if moment is not None]
    if not moments:
        return timezone.now()
    return min(timezone.now(), max(moments) + AFTER_LATEST * market.period)


def trade_chart(trade) -> dict:
    """The trade's market from BEFORE_ENTRY candles before its entry to AFTER_EXIT after its exit (while it
    is open, to the bot's latest activity), at most MAX_CANDLES, with the bot's trades and calls in that
    window."""
    bot = trade.bot
    if bot is None or trade.execution_time is None:
        return {"empty": "This trade has no fill on the market to draw."}
    market = Market(bot.exchange, bot.symbol, bot.timeframe)
    if trade.closed_at:
        until = min(timezone.now(), trade.closed_at + AFTER_EXIT * market.period)
    else:
        until = _latest(bot, market)
    span = (until - trade.execution_time) // market.period + BEFORE_ENTRY
    return _chart(bot, market, until=until, limit=max(1, min(int(span), MAX_CANDLES)), focus=trade.pk)


def _chart(bot, market: Market, *, until: datetime, limit: int, focus: int | None = None) -> dict:
    try:
        df = source_for(market).candles(market, limit=limit, until=until)
    except MarketDataError as e:
        return {"empty": f"The candles of {market.symbol} on {market.exchange} cannot be read now: {e}"}
    if df is None or df.empty:
        return {"empty": f"No candles of {market.symbol} on {market.exchange} up to {until:%Y-%m-%d %H:%M}."}
    start, end = df.index[0].to_pydatetime(), df.index[-1].to_pydatetime() + market.period
    times = [moment.isoformat() for moment in df.index.to_pydatetime()]
    data = [
        {
            "type": "candlestick",
            "name": market.symbol,
            "x": times,
            "open": df["open"].tolist(),
            "high": df["high"].tolist(),
            "low": df["low"].tolist(),
            "close": df["close"].tolist(),
            "increasing": {"line": {"color": UP}},
            "decreasing": {"line": {"color": DOWN}},
            "hoverinfo": "x+y",
        },
        *_trade_traces(bot, start, end, focus),
        *_call_traces(bot, df, start, end),
    ]
    layout = {
        "height": 420,
        "margin": {"l": 50, "r": 10, "t": 10, "b": 30},
        # The window's own range: a trade that began before it or ends after it must not stretch it.
        "xaxis": {"rangeslider": {"visible": False}, "type": "date", "range": [times[0], end.isoformat()]},
        "yaxis": {"title": {"text": market.symbol}, "fixedrange": False},
        "legend": {"orientation": "h", "y": -0.12},
        "hovermode": "closest",
        "showlegend": True,
    }
    return {"data": data, "layout": layout}


def _price(value) -> str:
    return f"{float(value):.6g}"


def _trade_traces(bot, start: datetime, end: datetime, focus: int | None) -> list[dict]:
    """Entries (a triangle up for a buy, down for a sell), exits (a cross), and each trade's stop-loss and
    take-profit as a dashed line from its entry to its exit (to the window's end while it is open)."""
    trades = bot.trades.filter(execution_time__lt=end, execution_time__isnull=False).exclude(
        closed_at__lt=start
    )
    entries, exits, stops, targets = _points(), _points(), _lines(), _lines()
    for trade in trades.order_by("execution_time"):
        label = f"{trade.side} {trade.symbol} · trade {trade.pk}" + (
            " (this trade)" if trade.pk == focus else ""
        )
        entries["x"].append(trade.execution_time.isoformat())
        entries["y"].append(float(trade.price))
        entries["text"].append(f"{label}<br>entry {_price(trade.price)}")
        entries["marker"]["symbol"].append("triangle-up" if trade.side == "BUY" else "triangle-down")
        entries["marker"]["color"].append(UP if trade.side == "BUY" else DOWN)
        entries["customdata"].append(trade.pk)
        finish = min(trade.closed_at or end, end)
        if trade.exit_price is not None and trade.closed_at is not None:
            exits["x"].append(trade.closed_at.isoformat())
            exits["y"].append(float(trade.exit_price))
            result = f"{trade.outcome or trade.status}" + (
                f", P&L {_price(trade.pnl)}" if trade.pnl is not None else ""
            )
            exits["text"].append(f"{label}<br>exit {_price(trade.exit_price)} ({html.escape(result)})")
            exits["marker"]["symbol"].append("x")
            exits["marker"]["color"].append("#111827")
            exits["customdata"].append(trade.pk)
        for level, line, name in (
            (trade.stop_loss, stops, "stop-loss"),
            (trade.take_profit, targets, "take-profit"),
        ):
            if level is not None:
                line["x"] += [trade.execution_time.isoformat(), finish.isoformat(), None]
                line["y"] += [float(level), float(level), None]
                line["text"] += [f"{label}<br>{name} {_price(level)}"] * 2 + [None]
    traces = []
    if entries["x"]:
        traces.append({**entries, "name": "Entries", "marker": {**entries["marker"], "size": 12}})
    if exits["x"]:
        traces.append({**exits, "name": "Exits", "marker": {**exits["marker"], "size": 11}})
    if stops["x"]:
        traces.append({**stops, "name": "Stop-losses", "line": {"color": STOP, "dash": "dash", "width": 1.2}})
    if targets["x"]:
        traces.append(
            {**targets, "name": "Take-profits", "line": {"color": TARGET, "dash": "dash", "width": 1.2}}
        )
    return traces


def _call_traces(bot, df, start: datetime, end: datetime) -> list[dict]:
    """Each analysis in the window as a dot on the close of the candle it was made after, coloured by its
    call; its hover text is the call, its confidence and the start of its reasoning."""
    analyses = (
        AILearningData.objects.filter(bot=bot, cycle_run__slot__gte=start, cycle_run__slot__lt=end)
        .select_related("cycle_run")
        .order_by("cycle_run__slot")
    )
    calls = _points()
    closes = df["close"]
    bot_period = Market(bot.exchange, bot.symbol, bot.timeframe).period
    for analysis in analyses:
        slot = analysis.cycle_run.slot
        # The candles that had closed by the slot, as the analyst saw them; the dot is on the last close.
        seen = closes[: slot - bot_period]
        if seen.empty:
            continue
        reasoning = str(analysis.analysis_data.get("reasoning", ""))
        excerpt = reasoning[:REASONING_EXCERPT] + ("…" if len(reasoning) > REASONING_EXCERPT else "")
        confidence = f"{analysis.confidence_score:.0f} %" if analysis.confidence_score is not None else "—"
        call = analysis.recommendation or "no call"
        calls["x"].append(slot.isoformat())
        calls["y"].append(float(seen.iloc[-1]))
        lines = [f"{call} · {confidence} confident · analysis {analysis.pk}"]
        lines += [html.escape(line) for line in textwrap.wrap(excerpt, HOVER_LINE)]
        calls["text"].append("<br>".join(lines))
        colour = {"BUY": UP, "SELL": DOWN}.get(analysis.recommendation, NEUTRAL)
        calls["marker"]["symbol"].append("circle")
        calls["marker"]["color"].append(colour)
        calls["customdata"].append(analysis.pk)
    if not calls["x"]:
        return []
    return [{**calls, "name": "Analyses", "marker": {**calls["marker"], "size": 7, "opacity": 0.75}}]


def _points() -> dict:
    return {
        "type": "scatter",
        "mode": "markers",
        "x": [],
        "y": [],
        "text": [],
        "customdata": [],
        "hoverinfo": "text",
        "marker": {"symbol": [], "color": []},
    }


def _lines() -> dict:
    return {"type": "scatter", "mode": "lines", "x": [], "y": [], "text": [], "hoverinfo": "text"}
