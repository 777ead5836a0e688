"""Trades' events (trades.signals), told to the trade's owner."""

from django.dispatch import receiver

from trades.signals import trade_closed, trade_opened

from .events import Event
from .services import notify


def _where(trade) -> str:
    bot = f"“{trade.bot.name}”" if trade.bot_id else "manual"
    mode = "paper" if trade.is_simulated else "live"
    return f"{bot}, {mode}"


@receiver(trade_opened, dispatch_uid="notifications.trade_opened")
def on_trade_opened(sender, trade, **kwargs):
    levels = ", ".join(
        f"{name} {value.normalize():f}"
        for name, value in (("stop", trade.stop_loss), ("target", trade.take_profit))
        if value is not None
    )
    notify(
        trade.owner,
        Event.TRADE_OPENED,
        f"{trade.side} {trade.symbol} opened",
        f"{trade.side} {trade.amount.normalize():f} {trade.symbol} at {trade.price.normalize():f} "
        f"({_where(trade)}){'; ' + levels if levels else ''}.",
        {"trade": trade.pk, "bot": trade.bot_id, "symbol": trade.symbol, "side": trade.side,
         "amount": str(trade.amount), "price": str(trade.price)},
    )  # fmt: skip


@receiver(trade_closed, dispatch_uid="notifications.trade_closed")
def on_trade_closed(sender, trade, **kwargs):
    reason = (trade.learning_data or {}).get("exit_reason", "")
    pnl = f"{trade.pnl:+.2f} {trade.symbol.split('/')[-1]}" if trade.pnl is not None else "unknown"
    percent = f" ({trade.pnl_percent:+.2f} %)" if trade.pnl_percent is not None else ""
    by = f" by {reason.replace('_', ' ').lower()}" if reason else ""  # TAKE_PROFIT: "by take profit"
    notify(
        trade.owner,
        Event.TRADE_CLOSED,
        f"{trade.side} {trade.symbol} closed: {trade.outcome or 'closed'}",
        f"{trade.side} {trade.symbol} closed at {trade.exit_price.normalize():f}{by} ({_where(trade)}): "
        f"P&L {pnl}{percent}.",
        {"trade": trade.pk, "bot": trade.bot_id, "symbol": trade.symbol, "outcome": trade.outcome,
         "exit_price": str(trade.exit_price), "pnl": str(trade.pnl), "exit_reason": reason},
    )  # fmt: skip
