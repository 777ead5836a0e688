"""The bot page shows the policy its decisions use, where it came from, and lets the owner pin values."""

from learning.models import LearnedPolicy
from learning.policy import effective_policy
from tests.factories import BotFactory


def test_the_bot_page_shows_the_default_policy_until_there_is_enough_to_learn(alice_client, alice):
    bot = BotFactory(owner=alice, min_confidence=70)
    page = alice_client.get(f"/bots/{bot.pk}/").content.decode()
    assert "Not enough resolved analyses to learn from yet" in page
    assert "<dt>Minimum confidence</dt><dd>70" in page


def test_the_owner_pins_and_unpins_values(alice_client, alice):
    bot = BotFactory(owner=alice, min_confidence=70)
    LearnedPolicy.objects.create(
        bot=bot, min_confidence=60, size_factor=0.5, sample_sizes={"learned": True, "resolved": 120},
        avoid_conditions=[{"field": "regime", "value": "RANGE_HIGH_VOL", "n": 40, "expectancy_r": -0.3}],
        patterns=[{
            "conditions": {"rsi_band": "<30", "market_sentiment": "BULLISH"}, "action": "trade", "n": 64,
            "expectancy_r": 0.71, "low": 0.22, "high": 1.2, "q_value": 0.004,
        }],
    )  # fmt: skip
    page = alice_client.get(f"/bots/{bot.pk}/").content.decode()
    assert "Learned from 120 resolved analyses" in page and "regime RANGE_HIGH_VOL (-0.30 R over 40)" in page
    # The pattern it trades inside of, with its evidence.
    assert (
        "trades when RSI &lt;30 and sentiment BULLISH (+0.71 R a call, 95% CI +0.22 to +1.20, n=64, q=0.004)"
    ) in page

    response = alice_client.post(f"/bots/{bot.pk}/policy/", {"min_confidence": "75", "size_factor": ""})
    assert response.status_code == 302
    assert (effective_policy(bot).min_confidence, effective_policy(bot).size_factor) == (75, 0.5)
    assert "pinned" in alice_client.get(f"/bots/{bot.pk}/").content.decode()

    alice_client.post(f"/bots/{bot.pk}/policy/", {"min_confidence": "", "size_factor": ""})
    assert effective_policy(bot).min_confidence == 60


def test_a_bad_pin_is_a_form_error_and_another_users_bot_a_404(alice_client, alice, charlie):
    bot = BotFactory(owner=alice)
    page = alice_client.post(f"/bots/{bot.pk}/policy/", {"min_confidence": "150"})
    assert page.status_code == 200
    assert "min_confidence" in page.context["pin_form"].errors
    assert not LearnedPolicy.objects.filter(bot=bot).exists()
    theirs = BotFactory(owner=charlie)
    assert alice_client.post(f"/bots/{theirs.pk}/policy/", {"min_confidence": "50"}).status_code == 404
