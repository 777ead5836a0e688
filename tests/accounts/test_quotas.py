"""Quotas by plan on what one account holds (issue 15, finding 7): bots, exchange accounts and API tokens are
refused past the plan's cap, on the page (a form error) and in the API (a 400 naming the reason); a user
without a plan gets the settings' defaults; operators edit a plan's quotas in the admin."""

from collections import Counter
from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiToken, ExchangeAccount, Plan
from automation.models import Bot
from tests.automation.test_bots import VALID
from tests.factories import PASSWORD, BotFactory, ExchangeAccountFactory, UserFactory

ATTEMPTS = 150  # what the finding made in 11 s, all accepted


def bot_body(i: int) -> dict:
    return {"name": f"my bot {i}", "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}


def account_body(i: int) -> dict:
    # Kraken does not report a key's permissions: nothing leaves the machine.
    return {"label": f"account {i}", "exchange": "kraken", "api_key": f"KEY-{i:012d}", "secret": "SECRET-xyz"}


@pytest.fixture
def small_plan(alice):
    alice.plan = Plan.objects.create(name="Small", max_bots=2, max_exchange_accounts=2, max_api_tokens=2)
    alice.save()
    return alice.plan


def refusal(response) -> str:
    assert response.status_code == 400, response.content
    return " ".join(response.json()["non_field_errors"])


def test_finding_7_150_bots_through_the_api_stop_at_the_default_cap(api, alice):
    statuses = Counter(api.post("/api/v1/bots/", bot_body(i)).status_code for i in range(ATTEMPTS))
    cap = settings.DEFAULT_MAX_BOTS
    assert statuses == {201: cap, 400: ATTEMPTS - cap}
    assert Bot.objects.filter(owner=alice).count() == cap
    said = refusal(api.post("/api/v1/bots/", bot_body(999)))
    assert f"Your plan allows {cap} bots and you have {cap}" in said


def test_finding_7_150_exchange_accounts_through_the_api_stop_at_the_default_cap(api, alice):
    statuses = Counter(
        api.post("/api/v1/exchange-accounts/", account_body(i)).status_code for i in range(ATTEMPTS)
    )
    cap = settings.DEFAULT_MAX_EXCHANGE_ACCOUNTS
    assert statuses == {201: cap, 400: ATTEMPTS - cap}
    assert ExchangeAccount.objects.filter(owner=alice).count() == cap
    assert f"Your plan allows {cap} exchange accounts" in refusal(
        api.post("/api/v1/exchange-accounts/", account_body(999))
    )


def test_finding_7_150_tokens_on_the_page_stop_at_the_default_cap(alice_client, alice):
    for i in range(ATTEMPTS):
        page = alice_client.post(reverse("api_tokens"), {"name": f"script {i}"})
        assert page.status_code == 200
    cap = settings.DEFAULT_MAX_API_TOKENS
    assert ApiToken.objects.filter(user=alice).count() == cap
    # The refusal is the form's error, and no token is shown.
    assert f"Your plan allows {cap} API tokens and you have {cap}" in page.content.decode()
    assert page.context["issued"] is None


def test_the_token_endpoint_refuses_a_token_past_the_plans_cap(client, alice, small_plan):
    body = {"email": alice.email, "password": PASSWORD, "name": "script"}
    made = [client.post("/api/v1/auth/token/", body, content_type="application/json") for _ in range(3)]
    assert [response.status_code for response in made] == [201, 201, 400]
    assert "Your plan allows 2 API tokens and you have 2" in refusal(made[2])
    assert "token" not in made[2].json()
    assert ApiToken.objects.filter(user=alice).count() == 2


def test_a_plans_caps_replace_the_defaults_and_bind_only_their_owner(api, charlie_api, alice, small_plan):
    BotFactory.create_batch(2, owner=alice)
    assert "Your plan allows 2 bots and you have 2" in refusal(api.post("/api/v1/bots/", bot_body(1)))
    # Charlie has no plan: the default cap, and alice's bots do not count for him.
    assert charlie_api.post("/api/v1/bots/", bot_body(1)).status_code == 201
    assert charlie_api.post("/api/v1/bots/", bot_body(2)).status_code == 201
    # The operator raises alice's plan: it applies at once.
    small_plan.max_bots = 3
    small_plan.save()
    assert api.post("/api/v1/bots/", bot_body(1)).status_code == 201


def test_a_bot_past_the_cap_is_a_form_error_on_the_page(alice_client, alice, small_plan):
    BotFactory.create_batch(2, owner=alice)
    page = alice_client.post(reverse("bot_create"), VALID)
    assert page.status_code == 200
    assert "Your plan allows 2 bots and you have 2" in page.context["form"].non_field_errors()[0]
    assert Bot.objects.filter(owner=alice).count() == 2


def test_an_exchange_account_past_the_cap_is_a_form_error_on_the_page(alice_client, alice, small_plan):
    ExchangeAccountFactory.create_batch(2, owner=alice)
    page = alice_client.post(reverse("exchange_accounts"), account_body(3))
    assert page.status_code == 200
    assert "Your plan allows 2 exchange accounts" in page.context["form"].non_field_errors()[0]
    assert ExchangeAccount.objects.filter(owner=alice).count() == 2
    # Revoking one makes room again.
    ExchangeAccount.objects.filter(owner=alice).first().delete()
    assert alice_client.post(reverse("exchange_accounts"), account_body(3)).status_code == 302


def test_an_operator_edits_a_plans_quotas_in_the_admin(client, alice, small_plan):
    operator = UserFactory(email="ops@example.com", is_staff=True, is_superuser=True)
    client.force_login(operator)
    # The admin wants staff signed in with their second factor.
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.create(user=operator, name="phone").persistent_id
    session.save()
    url = reverse("admin:accounts_plan_change", args=[small_plan.pk])
    page = client.get(url).content.decode()
    for field in (
        "max_bots",
        "max_exchange_accounts",
        "max_api_tokens",
        "max_model_connections",
        "run_now_per_hour",
        "cycles_per_day",
        "backtests_at_once",
        "backtest_max_candles",
    ):
        assert f'name="{field}"' in page
    quotas = {
        "name": "Small", "max_running_bots": 1, "max_bots": 5, "max_exchange_accounts": 4,
        "max_api_tokens": 3, "max_model_connections": 2, "run_now_per_hour": 6, "cycles_per_day": 48,
        "monthly_llm_usd": "2.50", "backtests_at_once": 2, "backtest_max_candles": 3000,
    }  # fmt: skip
    assert client.post(url, quotas).status_code == 302
    small_plan.refresh_from_db()
    assert (
        small_plan.max_bots,
        small_plan.max_model_connections,
        small_plan.cycles_per_day,
        small_plan.monthly_llm_usd,
    ) == (5, 2, 48, Decimal("2.50"))
    assert (small_plan.backtests_at_once, small_plan.backtest_max_candles) == (2, 3000)
    # A negative spend is refused with the field's reason.
    page = client.post(url, {**quotas, "monthly_llm_usd": "-1"})
    assert page.status_code == 200 and "monthly_llm_usd" in page.context["adminform"].form.errors
    listed = client.get(reverse("admin:accounts_plan_changelist")).content.decode()
    assert "48" in listed and "2.50" in listed
