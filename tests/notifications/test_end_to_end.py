"""A trade opened by a cycle reaches a user's signed webhook through a real Celery worker (the io queue, on
the configured broker), past a 429 that asked for a second's wait."""

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from automation.cycle import run_cycle
from automation.models import AutomationSession, Bot
from notifications.models import Delivery
from tests.automation.test_celery_worker import celery_env, start, wait_for
from tests.factories import BotFactory, import_eurusd
from trades.models import Trade

from .conftest import HMAC_KEY, add_channel

__all__ = ["celery_env"]

FIRST_SLOT = datetime(2017, 10, 2, 0, tzinfo=UTC)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_trade_opened_by_a_cycle_is_delivered_to_the_webhook_by_the_worker(
    alice, notify_stand_in, celery_env, tmp_path
):
    import_eurusd()
    add_channel(alice, kind="WEBHOOK", url=f"{notify_stand_in.base_url}/hook", hmac_key=HMAC_KEY)
    notify_stand_in.fail("/hook", 429, retry_after=1)
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING,
        analyst=Bot.Analyst.TECHNICAL,
    )  # fmt: skip
    AutomationSession.objects.create(bot=bot)
    hour = 0
    while not Trade.objects.filter(bot=bot).exists():
        run_cycle(bot.pk, FIRST_SLOT + timedelta(hours=hour), on_schedule=False)
        hour += 1
        assert hour < 100, "no trade in 100 cycles"
    trade = Trade.objects.get(bot=bot)
    delivery = Delivery.objects.get(notification__data__trade=trade.pk)
    assert delivery.status == Delivery.Status.QUEUED  # sent to the broker as the trade committed

    log_path = tmp_path / "celery.log"
    with log_path.open("w") as log:
        worker = start(["worker", "--pool=solo", "--queues=io", "--without-mingle"], celery_env, log)
        try:
            sent = wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.SENT, 60)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    assert sent, log_path.read_text()

    delivery.refresh_from_db()
    assert [a["status_code"] for a in delivery.attempts] == [429, 200]
    first, second = notify_stand_in.to("/hook")
    assert first.body == second.body  # the same event, tried again
    body = second.json()
    assert (body["event"], body["data"]["trade"]) == ("TRADE_OPENED", trade.pk)
    assert body["title"] == f"{trade.side} EUR/USD opened"
    timestamp = second.headers["x-tradingai-timestamp"]
    expected = hmac.new(HMAC_KEY.encode(), f"{timestamp}.".encode() + second.body, hashlib.sha256).hexdigest()
    assert second.headers["x-tradingai-signature"] == f"v1={expected}"
