"""Live entries written ahead: a live order is stored as a PENDING trade, with its client order id, before it
is sent, so that no position can exist on the exchange without a row here.

Before, the trade was written only after the exchange had filled the order; when that write failed (the
database gone for a moment, a constraint, the worker killed) the position was invisible: not watched by the
monitor, not counted by the risk limits, and the next slot opened a second one. Now:

- the PENDING trade counts as open in the risk limits (trades.accounting), at the decided amount and price;
- after the fill the same row becomes OPEN with the fill's figures (`record_fill`, once: a compare-and-swap
  on PENDING);
- an order the exchange refused is CANCELLED at once;
- a PENDING trade whose cycle ended without recording the fill (the write failed, the exchange could not
  say, the worker died) is settled from the exchange by `settle_pending`, run by the monitor and the
  recovery sweep: the order found by its client order id becomes the trade's fill, with its stop-loss and
  take-profit placed as `place` would have; an order the exchange does not have (or that ended there
  unfilled), `PENDING_GRACE` after it was written, was never taken, and its trade is CANCELLED.

Paper trades keep their single write: the paper broker cannot fill without the database, there is no
position elsewhere to lose, and the replay's books write paper trades in bulk."""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.audit import record_live_order

from .brokers.base import BrokerError, Fill, OrderRequest, SettlingBroker
from .models import Trade
from .signals import trade_opened

logger = logging.getLogger(__name__)

# How long an order may be missing from the exchange after its trade was written before it counts as never
# taken. An exchange may list an order a moment after taking it (placing timed out, the lookup did not see it
# yet); the cycle asks for about 45 s (automation.cycle.PLACE_RETRY_WAITS), so this is well past that.
PENDING_GRACE = timedelta(minutes=5)
# The cycle runs that may still place or record their order: their PENDING trades are theirs to settle.
RUN_IN_PROGRESS = ("CLAIMED", "RUNNING")


def fill_fields(trade: Trade, fill: Fill) -> dict:
    """What a fill writes on its trade, decided at `trade.price`: it is OPEN, at the fill's amount, price,
    fee and time, with what the fill lost against the decided price (its slippage, a cost of the trade)."""
    direction = 1 if trade.side == Trade.Side.BUY else -1
    slippage = direction * (fill.price - trade.price) * fill.amount
    return dict(
        status=Trade.Status.OPEN,
        amount=fill.amount,
        price=fill.price,
        fees=fill.fee,
        exchange_order_id=fill.exchange_order_id,
        execution_time=fill.filled_at,
        learning_data={
            **trade.learning_data,
            "entry_slippage": format(slippage.normalize(), "f"),
            "protected_on_exchange": fill.protected_on_exchange,
            "protection_id": fill.protection_id,
            "base_fee": str(fill.base_fee),
        },
    )


def record_fill(trade: Trade, fill: Fill) -> bool:
    """The PENDING trade made OPEN with `fill`, and its order audited; False if it was settled already."""
    # Its own savepoint: a failed write leaves a caller's transaction usable to record why.
    with transaction.atomic():
        filled = Trade.objects.filter(pk=trade.pk, status=Trade.Status.PENDING).update(
            **fill_fields(trade, fill), updated_at=timezone.now()
        )
    trade.refresh_from_db()
    if filled:
        record_live_order(trade)
        trade_opened.send(sender=Trade, trade=trade)
    return bool(filled)


def cancel(trade: Trade, reason: str) -> bool:
    """The PENDING trade whose order was never taken, CANCELLED with the reason; False if settled already."""
    with transaction.atomic():
        cancelled = Trade.objects.filter(pk=trade.pk, status=Trade.Status.PENDING).update(
            status=Trade.Status.CANCELLED,
            learning_data={**trade.learning_data, "cancelled": reason[:500]},
            updated_at=timezone.now(),
        )
    trade.refresh_from_db()
    return bool(cancelled)


def order_of(trade: Trade) -> OrderRequest:
    """The order the trade was written ahead of, as the cycle sent it."""
    return OrderRequest(
        symbol=trade.symbol,
        side=trade.side,
        amount=trade.amount,
        price=trade.price,
        client_order_id=trade.client_order_id,
        stop_loss=trade.stop_loss,
        take_profit=trade.take_profit,
    )


def settle_pending(bot, broker: SettlingBroker | None = None) -> list[Trade]:
    """Settle the bot's PENDING trades whose cycle has ended, from the exchange (see the module's note);
    returns the trades now OPEN. A trade the exchange cannot be asked about now stays PENDING, and counted."""
    settled = []
    if bot.exchange_account_id is None:
        logger.warning("bot %s has pending live trades and no exchange account to settle them", bot.pk)
        return settled
    pending = (
        Trade.objects.filter(bot=bot, status=Trade.Status.PENDING, is_simulated=False)
        .exclude(analysis__cycle_run__status__in=RUN_IN_PROGRESS)
        .order_by("created_at")
    )
    for trade in pending:
        if broker is None:
            from .brokers.live import LiveBroker

            broker = LiveBroker(bot.exchange_account)
        try:
            fill = broker.settle(order_of(trade))
        except BrokerError as e:
            logger.warning("pending trade %s: the exchange cannot say yet: %s", trade.pk, e)
            continue
        if fill is not None:
            if record_fill(trade, fill):
                settled.append(trade)
        elif timezone.now() - trade.created_at > PENDING_GRACE:
            never = "never placed, or ended unfilled"
            cancel(trade, f"no fill of order {trade.client_order_id} on the exchange: {never}")
    return settled
