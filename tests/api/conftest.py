from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from accounts.models import ApiToken
from automation.models import AutomationSession, CycleRun
from learning.models import AILearningData
from tests.factories import BotFactory, ExchangeAccountFactory
from trades.models import Trade

API_KEY, SECRET = "AKIA-api-key-000111222", "secret-never-shown-9f8e"


def client_of(user) -> APIClient:
    client = APIClient()
    _, plain = ApiToken.issue(user, "tests")
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
    return client


@pytest.fixture
def api(alice) -> APIClient:
    """Alice's API client, authenticated with a token of hers."""
    return client_of(alice)


@pytest.fixture
def charlie_api(charlie) -> APIClient:
    return client_of(charlie)


@pytest.fixture
def objects(alice):
    """One of each of alice's API objects, linked as the cycle links them."""
    account = ExchangeAccountFactory(owner=alice, api_key=API_KEY, secret=SECRET)
    bot = BotFactory(owner=alice, exchange="binance", symbol="BTC/USDT")
    session = AutomationSession.objects.create(bot=bot)
    run = CycleRun.objects.create(bot=bot, session=session, slot=datetime(2024, 1, 1, tzinfo=UTC))
    analysis = AILearningData.objects.create(
        user=alice, bot=bot, session=session, cycle_run=run, symbol="BTC/USDT", timeframe="1h",
        recommendation="BUY", confidence_score=75, analysis_data={}, market_conditions={},
    )  # fmt: skip
    analysis.screenshot.save("chart.png", ContentFile(b"\x89PNG\r\n\x1a\nfake"))
    trade = Trade.objects.create(
        owner=alice, bot=bot, session=session, analysis=analysis, symbol="BTC/USDT", side="BUY",
        amount=Decimal("0.1"), price=Decimal(42000),
    )  # fmt: skip
    token = ApiToken.objects.get(user=alice) if ApiToken.objects.filter(user=alice).exists() else None
    return {
        "exchange-accounts": account.pk, "bots": bot.pk, "sessions": session.pk, "runs": run.pk,
        "analyses": analysis.pk, "trades": trade.pk, "tokens": token.pk if token else None,
    }  # fmt: skip
