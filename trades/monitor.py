"""Open trades against the candles since their entry (docs/architecture.md, "Steps 5-8"): stop-loss or
take-profit touched by a candle's low or high closes the trade (`outcomes.first_exit`: a target at its
level, a stop at its level or at the open that gapped through it, less the slippage); when one candle
touches both, the stop counts (we cannot know which came first, and the conservative reading keeps the
learning honest); at its time limit (the call's horizon, at most MAX_HOLDING_CANDLES:
`outcomes.time_limit`) the trade closes at that candle's close, less the slippage. A paper trade leaves
with its market's paper costs (`brokers.simulation.paper_costs`): by this rule, its call is scored the same
had it not been traded (`outcomes.paper_trade`).

A live trade whose stop-loss and take-profit the exchange holds (an OCO list, trades.brokers.live) closes
when the exchange filled one of them, at that fill; the candles then only decide the time exit, for which
the list is cancelled first."""

from decimal import Decimal

import pandas as pd
from django.conf import settings
from django.db import transaction

from accounts.audit import record_live_close

from .brokers.base import Broker, OrderRequest
from .brokers.simulation import paper_costs
from .entries import settle_pending
from .models import Trade
from .outcomes import PRICE_STEP, Bars, Costs, Exit, first_exit, time_limit, trade_result
from .signals import trade_closed


def costs_of(trade: Trade) -> Costs:
    """The paper costs of the trade's market (a live trade's exit is the exchange's fill: these only set
    the price its closing order is placed at)."""
    return paper_costs(trade.bot.exchange, trade.symbol)


def find_exit(trade: Trade, candles: Bars | pd.DataFrame, period, costs: Costs) -> Exit | None:
    """The trade's exit by `outcomes.first_exit` at the market's `costs`, or None while it stays open."""
    limit = time_limit(trade.learning_data.get("horizon"), settings.MAX_HOLDING_CANDLES)
    return first_exit(
        trade.side,
        trade.stop_loss,
        trade.take_profit,
        trade.execution_time,
        candles,
        period,
        limit,
        costs,
    )


def close_trade(trade: Trade, exit: Exit, exit_fee: Decimal, resolve) -> bool:
    """Close an open trade at `exit`, with its outcome, and resolve the analysis behind it (`resolve(trade)`,
    learning's, passed in: learning sits above trades) in the same transaction. Compare-and-swap on the
    status: False if someone closed it first."""
    with transaction.atomic():
        closed = Trade.objects.filter(pk=trade.pk, status=Trade.Status.OPEN).update(
            **closing_fields(trade, exit, exit_fee)
        )
        if closed:
            trade.refresh_from_db()
            resolve(trade)
            if not trade.is_simulated:
                record_live_close(trade)
            trade_closed.send(sender=Trade, trade=trade)
    return closed == 1


def closing_fields(trade: Trade, exit: Exit, exit_fee: Decimal) -> dict:
    """What closing the trade at `exit` writes on it: status, exit, fees, P&L and outcome, and its costs
    (the fees and what the entry and the exit lost to slippage) in money and in R."""
    fees = trade.fees + exit_fee
    result = trade_result(
        side=trade.side,
        entry=trade.price,
        exit=exit.price,
        amount=trade.amount,
        fees=fees,
        stop=trade.stop_loss,
        exit_reason=exit.reason,
        worst=exit.worst,
        band_pct=settings.BREAKEVEN_BAND_PCT,
        slippage=Decimal(trade.learning_data.get("entry_slippage", 0))
        + exit.slippage(trade.side, trade.amount),
    )
    direction = 1 if trade.side == Trade.Side.BUY else -1
    return dict(
        status=Trade.Status.CLOSED,
        exit_price=exit.price,
        fees=fees,
        pnl=(direction * (exit.price - trade.price) * trade.amount - fees).quantize(PRICE_STEP),
        pnl_percent=result.pnl_percent,
        actual_rr=result.actual_rr,
        outcome=result.outcome,
        closed_at=exit.at,
        learning_data={
            **trade.learning_data,
            "exit_reason": exit.reason,
            "entry_accuracy": result.entry_accuracy,
            "market_behavior": result.market_behavior,
            "costs": format(result.costs.normalize(), "f"),
            "cost_r": float(result.cost_r) if result.cost_r is not None else None,
        },
    )


def _exit_fill(trade: Trade, exit: Exit, broker: Broker, costs: Costs) -> tuple[Exit, Decimal]:
    """Paper trades leave at the exit's price with the taker fee; live ones by a market order on the
    exchange, at the price it fills (its client order id makes a retried close find the first one)."""
    if trade.is_simulated:
        return exit, costs.fee(exit.price, trade.amount)
    fill = broker.place(
        OrderRequest(
            symbol=trade.symbol,
            side="SELL" if trade.side == Trade.Side.BUY else "BUY",
            # What the account holds: a fee taken from the bought currency is not there to sell.
            amount=trade.amount - Decimal(trade.learning_data.get("base_fee", 0)),
            price=exit.price,
            client_order_id=f"tai-trade-{trade.pk}-close",
        )
    )
    return Exit(fill.price, fill.filled_at, exit.reason, exit.worst, exit.level), fill.fee


def exit_of(
    trade: Trade, candles: Bars | pd.DataFrame, period, broker: Broker
) -> tuple[Exit, Decimal] | None:
    """The trade's exit and its fee, or None while it stays open."""
    protected = trade.learning_data.get("protection_id") and not trade.is_simulated
    state = broker.protection(trade.symbol, trade.client_order_id) if protected else None
    if state and state.fill:
        fill = state.fill
        return Exit(fill.price, fill.filled_at, state.exit_reason), fill.fee
    costs = costs_of(trade)
    exit = find_exit(trade, candles, period, costs)
    if exit is None:
        return None
    if state and state.resting:
        if exit.reason != "TIME_EXIT":
            return None  # the exchange holds this level: its fill, not the candle, says what happened
        broker.cancel_protection(trade.symbol, trade.client_order_id)
    return _exit_fill(trade, exit, broker, costs)


def monitor_trades(
    bot, candles: Bars | pd.DataFrame, period, broker: Broker | None = None, *, resolve, open_trades=None
) -> list[Trade]:
    """Close every open trade of the bot whose exit the candles (or the exchange) show, each with its
    analysis resolved by `resolve(trade)` (see close_trade); returns the trades closed. Live entries left
    PENDING by an ended cycle are settled from the exchange first, so that a position it filled is watched
    from this pass on. `open_trades`: the bot's open trades in order of execution, when the caller has read
    them (a cycle, with its other reads in plain SQL) and found no live entry PENDING."""
    if open_trades is None:
        if Trade.objects.filter(bot=bot, status=Trade.Status.PENDING, is_simulated=False).exists():
            settle_pending(bot, broker)
        open_trades = (
            Trade.objects.filter(bot=bot, status=Trade.Status.OPEN)
            .select_related("bot")
            .order_by("execution_time")
        )

    def broker_for(trade: Trade) -> Broker | None:
        nonlocal broker
        if broker is None and not trade.is_simulated:
            from .brokers.live import LiveBroker

            broker = LiveBroker(bot.exchange_account)
        return broker

    return watch(open_trades, candles, period, broker_for, lambda *closing: close_trade(*closing, resolve))


def watch(open_trades, candles: Bars | pd.DataFrame, period, broker_for, close) -> list[Trade]:
    """The monitor's pass over `open_trades`, wherever they are kept (the database, a replay's books): each
    one whose exit the candles (or the exchange) show is handed to `close(trade, exit, fee)`, which returns
    whether it closed it. Returns the trades closed."""
    closed = []
    for trade in list(open_trades):
        found = exit_of(trade, candles, period, broker_for(trade))
        if found and close(trade, *found):
            closed.append(trade)
    return closed
