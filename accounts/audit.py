"""The audit log's one writer: what was done to an account's live trading, by whom, and when.

Each action records its event where the action happens (a service, a form's save, the cycle, the monitor),
inside the action's own transaction where it has one: an action that rolls back leaves no event, and an
event never stands for an action that did not happen. Paper trading risks no money and is not recorded."""

from decimal import Decimal

from core.values import Side

from .models import AuditEvent

Action = AuditEvent.Action


def record(user, action: Action, summary: str, *, actor=None, **details) -> AuditEvent:
    """Record `action` on `user`'s account (None: the whole platform). `actor` is who did it: the user, an
    operator, or None for the platform itself. `details` are ids and figures for a machine to read (Decimals
    and times are stored as strings); never pass a key or a secret."""
    return AuditEvent.objects.create(user=user, actor=actor, action=action, summary=summary, details=details)


def record_live_order(trade) -> None:
    """The entry order of a live trade the cycle has just stored, and its stop-loss and take-profit when the
    exchange holds them. Written after the trade rather than with it: the order is on the exchange already,
    and its trade must be stored (and watched by the monitor) even if the event could not be."""
    # The figures as stored (rounded to the columns' places), not the unrounded ones the trade was made with.
    trade.refresh_from_db(fields=["amount", "price", "fees", "stop_loss", "take_profit"])
    bot = trade.bot
    verb = "bought" if trade.side == Side.BUY else "sold"
    _record_trade(
        trade,
        Action.LIVE_ORDER_PLACED,
        f"Bot “{bot.name}” {verb} {_num(trade.amount)} {trade.symbol} at {_num(trade.price)} on "
        f"{bot.exchange} (order {trade.client_order_id}).",
        price=trade.price,
        fees=trade.fees,
        exchange_order_id=trade.exchange_order_id,
    )
    if protection := trade.learning_data.get("protection_id"):
        _record_trade(
            trade,
            Action.LIVE_ORDER_PROTECTED,
            f"Stop-loss at {_num(trade.stop_loss)} and take-profit at {_num(trade.take_profit)} placed on "
            f"{bot.exchange} for the {trade.symbol} position (order list {protection}).",
            stop_loss=trade.stop_loss,
            take_profit=trade.take_profit,
            protection_id=protection,
        )


def record_live_close(trade) -> None:
    """A live trade the monitor has just closed (in the transaction that closed it)."""
    reason = trade.learning_data.get("exit_reason", "")
    quote = trade.symbol.partition("/")[2]
    _record_trade(
        trade,
        Action.LIVE_TRADE_CLOSED,
        f"Live {trade.symbol} trade closed at {_num(trade.exit_price)} ({reason.replace('_', ' ').lower()}): "
        f"P&L {_num(trade.pnl)} {quote}, {trade.outcome or 'no outcome'}.",
        exit_price=trade.exit_price,
        exit_reason=reason,
        pnl=trade.pnl,
        outcome=trade.outcome,
        fees=trade.fees,
    )


def _record_trade(trade, action: Action, summary: str, **details) -> None:
    """An event about a live trade, by the platform (its cycle or monitor)."""
    record(
        trade.owner,
        action,
        summary,
        trade_id=trade.pk,
        bot_id=trade.bot_id,
        symbol=trade.symbol,
        side=trade.side,
        amount=trade.amount,
        client_order_id=trade.client_order_id,
        **details,
    )


def _num(value: Decimal) -> str:
    # 0.001000000000 as the database keeps it reads 0.001 here; never 1E-3.
    return f"{value.normalize():f}"
