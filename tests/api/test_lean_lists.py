"""The lists written from `.values()` rows (core/api_lists.py) say exactly what the serializers say of the
same rows: every field, nulls and blanks, decimals and times, the chart's URL, ordered and paged alike."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework import serializers

from core.api_lists import representation_plan
from learning.api.serializers import AnalysisSerializer
from learning.api.views import AnalysisViewSet
from learning.models import AILearningData, PromptVersion
from trades.api.serializers import TradeSerializer
from trades.api.views import TradeViewSet
from trades.models import Trade

T0 = datetime(2025, 3, 30, 23, 59, 59, 123456, tzinfo=UTC)


@pytest.fixture
def filled(objects, alice):
    """Alice's rows beside the bare ones of `objects`: every field set, some to awkward values."""
    bot = AILearningData.objects.get(pk=objects["analyses"]).bot
    version = PromptVersion.objects.create(sha256="ab" * 32, text="prompt")
    for i in range(3):
        analysis = AILearningData.objects.create(
            user=alice, bot=bot, symbol="BTC/USDT", timeframe="1h", recommendation="SELL",
            market_sentiment="BEARISH", regime="TREND_HIGH_VOL", confidence_score=61.5,
            predicted_price=Decimal("41234.123456789012"), screenshot="charts/x.png" if i == 2 else "",
            analysis_data={"summary": "é ☃", "levels": [1, 2.5]}, market_conditions={"rsi": 71.25},
            feedback_data={"note": None}, outcome="LOSS",
            actual_price=Decimal("0.000000000001"), accuracy_score=0.125, outcome_r=-1.0, untraded=i == 1,
            resolved_at=T0, analyst="OPENAI", model_name="gpt-4o-mini", prompt_version=version,
            prompt_tokens=1234, completion_tokens=56, cost_usd=Decimal("0.000412"),
        )  # fmt: skip
        Trade.objects.create(
            owner=alice, bot=bot, analysis=analysis if i != 1 else None, symbol="BTC/USDT", side="SELL",
            amount=Decimal("0.00012345"), price=Decimal("41234.5"), stop_loss=Decimal("42000"),
            take_profit=Decimal("40000.01"), status="CLOSED", exit_price=Decimal("40000.01"),
            fees=Decimal("0.0001"), pnl=Decimal("-12.3456"), pnl_percent=Decimal("-2.99"),
            actual_rr=Decimal("1.6"), outcome="WIN", confidence=61, market_sentiment="BEARISH",
            learning_data={"exit_reason": "TAKE_PROFIT"}, client_order_id=f"c{i}", exchange_order_id=f"e{i}",
            execution_time=T0, closed_at=T0 + timedelta(hours=i),
        )  # fmt: skip


@pytest.mark.parametrize(
    ("path", "view", "serializer"),
    [
        ("/api/v1/trades/", TradeViewSet, TradeSerializer),
        ("/api/v1/analyses/", AnalysisViewSet, AnalysisSerializer),
    ],
)
@pytest.mark.parametrize("query", ["", "?ordering=created_at", "?page_size=2"])
def test_a_list_page_is_what_the_serializer_writes(api, filled, path, view, serializer, query):
    response = api.get(path + query)
    assert response.status_code == 200
    page = response.json()["results"]

    request = response.wsgi_request  # alice's, as the view saw it
    rows = (
        view(request=request).get_queryset().order_by("created_at" if "ordering" in query else "-created_at")
    )
    expected = serializer(rows[: len(page)], many=True, context={"request": request}).data
    assert page == [dict(row) for row in expected]
    assert len(page) == (2 if "page_size" in query else 4)
    if view is AnalysisViewSet:
        assert {row["chart_url"] is None for row in page} == {True, False}  # with a chart and without


def test_a_field_the_plan_cannot_write_from_one_column_is_refused():
    class Nested(serializers.ModelSerializer):
        bot_name = serializers.CharField(source="bot.name")

        class Meta:
            model = Trade
            fields = ("id", "bot_name")

    with pytest.raises(ImproperlyConfigured, match="bot_name"):
        representation_plan(Nested)
