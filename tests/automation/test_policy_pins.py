"""Issue 15, finding 9: a pinned avoid-condition is an object naming an avoidable field and one of its
values, through the API and the bot page alike; a valid pin is obeyed and the cycle still runs."""

from datetime import timedelta
from importlib import import_module

import pytest
from django.apps import apps

from automation.cycle import run_cycle
from automation.models import CycleRun
from learning.models import LearnedPolicy
from learning.policy import effective_policy, pin
from tests.api.conftest import client_of
from tests.automation.test_cycle import SLOT, _candles, bot, fakes  # noqa: F401  (_candles: bot's fixture)
from trades.models import Trade

BAD = [
    [None],
    [1],
    ["regime"],
    [[]],
    [{"field": "regime"}],
    [{"value": "BULLISH"}],
    [{"field": "moon", "value": "x"}],
    [{"field": "regime", "value": "SIDEWAYS"}],
    [{"field": "regime", "value": None}],
    [{"field": "regime", "value": ["UNKNOWN"]}],
    [{"field": "market_sentiment", "value": "RANGE_HIGH_VOL"}],  # a regime is no sentiment
    [{"field": "regime", "value": "UNKNOWN"}, None],
    {"field": "regime", "value": "UNKNOWN"},  # an object, not a list of them
    "regime UNKNOWN",
]


@pytest.mark.parametrize("conditions", BAD)
def test_a_bad_avoid_condition_is_a_400_naming_it_and_pins_nothing(bot, conditions):  # noqa: F811
    response = client_of(bot.owner).patch(f"/api/v1/bots/{bot.pk}/policy/", {"avoid_conditions": conditions})
    assert response.status_code == 400, response.json()
    assert response.json()["avoid_conditions"]
    assert not LearnedPolicy.objects.filter(bot=bot).exists()


def test_a_valid_pin_is_kept_obeyed_and_the_cycle_runs(bot):  # noqa: F811
    api = client_of(bot.owner)
    sent = [{"field": "market_sentiment", "value": "BULLISH"}, {"field": "regime", "value": "UNKNOWN"}]
    response = api.patch(f"/api/v1/bots/{bot.pk}/policy/", {"avoid_conditions": sent})
    assert response.status_code == 200
    assert response.json()["pins"] == {"avoid_conditions": sent}

    run = run_with_a_bullish_buy(bot)  # the fake analyst says BULLISH
    assert run.status == CycleRun.Status.SUCCEEDED, (run.failed_step, run.error)
    assert run.analysis.feedback_data["decision"]["reason"] == "pinned to avoid market_sentiment BULLISH"
    assert not Trade.objects.exists()

    assert api.patch(f"/api/v1/bots/{bot.pk}/policy/", {"avoid_conditions": None}).status_code == 200
    run = run_with_a_bullish_buy(bot, hours=1)
    assert run.status == CycleRun.Status.SUCCEEDED and Trade.objects.count() == 1


def run_with_a_bullish_buy(bot, hours=0):  # noqa: F811
    return run_cycle(bot.pk, SLOT + timedelta(hours=hours), fakes())


def test_pin_itself_refuses_a_bad_condition(bot):  # noqa: F811
    with pytest.raises(ValueError, match="exactly"):
        pin(bot, avoid_conditions=[None])
    assert effective_policy(bot).avoid_conditions == []


def test_the_bot_page_pins_avoid_conditions_and_refuses_what_is_not_a_choice(client, bot):  # noqa: F811
    client.force_login(bot.owner)
    url = f"/bots/{bot.pk}/policy/"
    response = client.post(url, {"avoid_conditions": ["regime:RANGE_HIGH_VOL", "market_sentiment:BEARISH"]})
    assert response.status_code == 302
    pinned = [
        {"field": "regime", "value": "RANGE_HIGH_VOL"},
        {"field": "market_sentiment", "value": "BEARISH"},
    ]
    assert effective_policy(bot).avoid_conditions == pinned
    page = client.get(f"/bots/{bot.pk}/")
    assert (
        "Pinned: avoid conditions regime RANGE_HIGH_VOL; market_sentiment BEARISH." in page.content.decode()
    )
    ticked = page.context["pin_form"]["avoid_conditions"].value()
    assert ticked == ["regime:RANGE_HIGH_VOL", "market_sentiment:BEARISH"]

    for bad in ["regime:SIDEWAYS", "moon:x", "regime", ""]:
        page = client.post(url, {"avoid_conditions": [bad]})
        assert page.status_code == 200
        assert "avoid_conditions" in page.context["pin_form"].errors
    assert effective_policy(bot).avoid_conditions == pinned

    client.post(url, {"min_confidence": "", "size_factor": ""})  # nothing ticked: back to what is learned
    assert effective_policy(bot).avoid_conditions == []


def test_pins_stored_before_the_check_are_mended_by_the_migration(bot):  # noqa: F811
    # A bot pinned [null] through the API before the fix failed every cycle at decide.
    broken = LearnedPolicy.objects.create(bot=bot, min_confidence=70, pins={"avoid_conditions": [None]})
    other = LearnedPolicy.objects.create(
        bot=bot.__class__.objects.create(owner=bot.owner, name="other", exchange="sample", symbol="EUR/USD"),
        min_confidence=70,
        pins={"min_confidence": 60, "avoid_conditions": [{"field": "regime", "value": "UNKNOWN"}, "x", None]},
    )
    import_module("learning.migrations.0007_drop_unusable_avoid_pins").drop_unusable_avoid_pins(apps, None)
    broken.refresh_from_db()
    other.refresh_from_db()
    assert broken.pins == {}  # no usable condition: the bot follows what it learns again
    assert other.pins == {"min_confidence": 60, "avoid_conditions": [{"field": "regime", "value": "UNKNOWN"}]}
    assert run_with_a_bullish_buy(bot).status == CycleRun.Status.SUCCEEDED
