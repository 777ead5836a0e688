"""Issue 15, finding 11 ("no second factor"): two-factor authentication with TOTP (django-otp), turned on and
off by the user with a code, asked for at sign-in after the password; required to switch a bot to live
trading and for staff in the admin. Codes are computed here as an authenticator app would."""

from base64 import b32decode

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.api.conftest import client_of
from tests.factories import UserFactory, force_login_verified


@pytest.fixture(autouse=True)
def no_wait_after_a_wrong_code(settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = (
        0  # django-otp makes each try after a wrong one wait; not the point here
    )


def code(secret: bytes, device=None) -> str:
    if device is not None:
        # An app shows a new code every 30 s and django-otp takes each one once: as if the next had come.
        TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)
    return f"{totp(secret):06d}"


def sign_in(client, password):
    return client.post(reverse("login"), {"username": "alice@example.com", "password": password})


def test_turn_on_sign_in_with_a_code_and_turn_off(client, alice, password):
    client.force_login(alice)
    page = client.get(reverse("two_factor"))
    secret_text = page.context["secret"].replace(" ", "")
    secret = b32decode(secret_text)
    qr = client.get(reverse("two_factor_qr"))
    assert qr["Content-Type"] == "image/svg+xml" and b"<svg" in qr.content

    wrong = client.post(reverse("two_factor"), {"code": f"{(totp(secret) + 1) % 1_000_000:06d}"})
    assert "That code is not right" in wrong.content.decode()
    assert not TOTPDevice.objects.filter(user=alice, confirmed=True).exists()
    assert client.post(reverse("two_factor"), {"code": code(secret)}).status_code == 302
    device = TOTPDevice.objects.get(user=alice, confirmed=True)
    assert client.get(reverse("two_factor_qr")).status_code == 404  # the secret is not shown again
    client.post(reverse("logout"))

    # Sign-in: the password alone signs nothing in; the code does.
    asked = sign_in(client, password)
    assert asked.status_code == 302 and asked["Location"] == reverse("login_code")
    assert client.get(reverse("dashboard")).status_code == 302
    refused = client.post(reverse("login_code"), {"code": "000000" if code(secret) != "000000" else "111111"})
    assert "That code is not right" in refused.content.decode()
    assert client.get(reverse("dashboard")).status_code == 302
    signed_in = client.post(reverse("login_code"), {"code": code(secret, device)})
    assert signed_in.status_code == 302 and signed_in["Location"] == reverse("dashboard")
    assert client.get(reverse("dashboard")).context["user"] == alice
    assert client.session["otp_device_id"] == device.persistent_id

    # Off: a wrong code changes nothing; the right one removes the device.
    client.post(reverse("two_factor"), {"code": "12345678"})
    assert TOTPDevice.objects.filter(user=alice, confirmed=True).exists()
    assert client.post(reverse("two_factor"), {"code": code(secret, device)}).status_code == 302
    assert not TOTPDevice.objects.filter(user=alice).exists()
    client.post(reverse("logout"))
    assert sign_in(client, password)["Location"] == reverse("dashboard")


def test_the_code_step_needs_the_password_step_first(client, alice):
    refused = client.post(reverse("login_code"), {"code": "123456"})
    assert refused.status_code == 302 and refused["Location"] == reverse("login")


def test_wrong_codes_make_the_next_try_wait(settings, client, alice, alice_two_factor, password):
    settings.OTP_TOTP_THROTTLE_FACTOR = 1
    sign_in(client, password)
    client.post(reverse("login_code"), {"code": "000000"})
    client.post(reverse("login_code"), {"code": "000000"})
    right = code(alice_two_factor.bin_key, alice_two_factor)
    assert (
        "Too many wrong codes: try again in"
        in client.post(reverse("login_code"), {"code": right}).content.decode()
    )


LIVE_BOT = {
    "name": "Live BTC", "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h", "mode": "LIVE",
    "live_confirmed": "on", "analyst": "TECHNICAL", "chart_source": "RENDERED", "starting_balance": "1000",
    "risk_per_trade_pct": "1", "max_position_pct": "25", "max_open_trades": "1", "daily_loss_limit_pct": "5",
    "min_confidence": "70",
}  # fmt: skip


def test_a_bot_cannot_go_live_without_two_factor_authentication(settings, alice_client, alice, alice_account):
    settings.LIVE_TRADING_ENABLED = True
    page = alice_client.post(reverse("bot_create"), {**LIVE_BOT, "exchange_account": alice_account.pk})
    assert page.context["form"].errors["mode"] == [
        "Turn on two-factor authentication first (Settings → Two-factor authentication)."
    ]
    api = client_of(alice).post(
        "/api/v1/bots/", {**LIVE_BOT, "live_confirmed": True, "exchange_account": alice_account.pk}
    )
    assert api.status_code == 400 and "two-factor" in api.json()["mode"][0]

    TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)
    made = alice_client.post(reverse("bot_create"), {**LIVE_BOT, "exchange_account": alice_account.pk})
    assert made.status_code == 302


def test_the_admin_refuses_staff_without_a_verified_second_factor(client, db, password):
    operator = UserFactory(email="ops@example.com", is_staff=True, is_superuser=True)
    client.force_login(operator)  # signed in with the password alone
    assert client.get("/admin/").status_code == 302
    client.logout()
    # The admin's sign-in asks for the code; the password alone is refused.
    refused = client.post("/admin/login/", {"username": "ops@example.com", "password": password})
    assert refused.status_code == 200 and "_auth_user_id" not in client.session

    verified = Client()
    force_login_verified(verified, operator)
    assert verified.get("/admin/").status_code == 200
