"""Password guessing (issue 15, findings 3 and 11): one lockout (django-axes) for the site's sign-in, the
admin's and the API's token endpoint, keyed by the (e-mail, client address) pair so that no one locks an
owner out from elsewhere, with a looser limit per client address; the client's address from the configured
count of trusted proxies, never from a header the client sets; the throttles' counts in the shared cache."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.cache import cache, caches
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import UserFactory

TOKEN_URL = "/api/v1/auth/token/"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.LOGIN_FAILURES_PER_ADDRESS = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def forwarded(chain):
    return {"X-Forwarded-For": chain} if chain else {}


def sign_in(client, email, password, path="/accounts/login/", address="203.0.113.7", chain=None):
    data = {"username": email, "password": password}
    return client.post(path, data, REMOTE_ADDR=address, headers=forwarded(chain))


def ask_token(email, password, address="203.0.113.7", chain=None):
    data = {"email": email, "password": password}
    return APIClient().post(TOKEN_URL, data, REMOTE_ADDR=address, headers=forwarded(chain))


def test_the_right_password_is_refused_after_three_failures_until_the_cool_off_passes(
    client, alice, password
):
    for _ in range(2):
        assert "Please enter a correct" in sign_in(client, "alice@example.com", "wrong").content.decode()
    third = sign_in(client, "alice@example.com", "wrong")
    assert third.status_code == 429 and "Too many failed sign-ins: try again in 15 minutes" in (
        third.content.decode()
    )
    refused = sign_in(client, "ALICE@example.com", password)  # the e-mail's case changes nothing
    assert refused.status_code == 429 and "or reset your password" in refused.content.decode()
    assert refused["Retry-After"] == "900"
    assert "_auth_user_id" not in client.session

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert sign_in(client, "alice@example.com", password).status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)
    assert not AccessAttempt.objects.exists()


def test_a_success_starts_the_count_afresh(client, alice, password):
    for _ in range(2):
        sign_in(client, "alice@example.com", "wrong")
    assert sign_in(client, "alice@example.com", password).status_code == 302
    client.logout()
    for _ in range(2):
        sign_in(client, "alice@example.com", "wrong")
    assert sign_in(client, "alice@example.com", password).status_code == 302  # 2 since the success


def test_bad_sign_ins_from_one_address_do_not_lock_the_owner_out_from_another(
    client, settings, alice, password
):
    """Finding 11: five bad sign-ins locked the owner out, repeatably, by anyone."""
    settings.AXES_FAILURE_LIMIT = 5
    settings.LOGIN_FAILURES_PER_ADDRESS = 20
    for _ in range(3):  # repeatably
        for _ in range(5):
            sign_in(client, "alice@example.com", "wrong", address="198.51.100.66")
        assert sign_in(client, "alice@example.com", password, address="198.51.100.66").status_code == 429
        assert ask_token("alice@example.com", password, address="198.51.100.66").status_code == 429
        assert sign_in(client, "alice@example.com", password, address="203.0.113.7").status_code == 302
        client.logout()
        assert ask_token("alice@example.com", password, address="192.0.2.1").status_code == 201


def test_one_address_guessing_many_accounts_is_refused(client, db, password):
    for n in range(5):
        sign_in(client, f"nobody{n}@example.com", "guess")  # accounts that need not exist
    UserFactory(email="victim@example.com")
    refused = sign_in(client, "victim@example.com", password)
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.content.decode()
    assert sign_in(client, "victim@example.com", password, address="192.0.2.9").status_code == 302


def test_the_admin_sign_in_is_under_the_same_lock(client, db, password):
    UserFactory(email="operator@example.com", is_staff=True, is_superuser=True)
    sign_in(client, "operator@example.com", "wrong")
    sign_in(client, "operator@example.com", "wrong", path="/admin/login/")
    assert ask_token("operator@example.com", "wrong").status_code == 429  # the third, through the API
    refused = sign_in(client, "operator@example.com", password, path="/admin/login/")
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.content.decode()


def test_token_endpoint_failures_lock_the_site_sign_in_and_the_api_answers_json(client, alice, password):
    """Finding 3: failures at the token endpoint did not count towards the sign-in lock."""
    assert ask_token("alice@example.com", "wrong").status_code == 400
    assert ask_token("Alice@Example.com", "wrong").status_code == 400
    locked = ask_token("alice@example.com", "wrong")
    assert locked.status_code == 429 and locked["Content-Type"] == "application/json"
    assert locked.json() == {
        "detail": "Too many failed sign-ins: try again in 15 minutes, or reset your password."
    }
    assert ask_token("alice@example.com", password).status_code == 429
    assert sign_in(client, "alice@example.com", password).status_code == 429


def test_with_no_trusted_proxy_a_rotating_forwarded_for_does_not_escape_the_lock(client, alice, password):
    for n in range(3):
        sign_in(client, "alice@example.com", "wrong", chain=f"10.0.0.{n}")
    assert sign_in(client, "alice@example.com", password, chain="10.0.0.99").status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}


def test_behind_one_trusted_proxy_the_right_most_forwarded_entry_is_the_client(
    client, settings, alice, password
):
    settings.TRUSTED_PROXIES = 1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = "10.1.1.1"  # REMOTE_ADDR: our proxy, the same for everyone
    for _ in range(3):  # the client put a left-most entry of its own choosing; the proxy appended its address
        sign_in(client, "alice@example.com", "wrong", address=proxy, chain="1.2.3.4, 198.51.100.9")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.9"}
    locked = sign_in(client, "alice@example.com", password, address=proxy, chain="198.51.100.9")
    assert locked.status_code == 429
    # The owner, behind the same proxy from another address, is not locked out.
    owner = sign_in(client, "alice@example.com", password, address=proxy, chain="198.51.100.10")
    assert owner.status_code == 302


def test_210_guesses_with_a_rotating_forwarded_for_then_the_right_password_get_no_token(
    settings, alice, password
):
    """Finding 3's reproduction: DRF's throttle keyed on X-Forwarded-For and counted in each process's
    memory; 210 wrong passwords with a rotating header, then the right one, got a token (201)."""
    settings.AXES_FAILURE_LIMIT = 5
    settings.LOGIN_FAILURES_PER_ADDRESS = 20
    codes = [
        ask_token("alice@example.com", f"guess {n}", chain=f"10.{n // 250}.{n % 250}.1").status_code
        for n in range(210)
    ]
    assert set(codes[5:]) == {429}
    assert ask_token("alice@example.com", password, chain="10.9.9.9").status_code == 429
    # The throttle's counts are in the cache every process shares (the database's table, or Redis with
    # CACHE_URL), not in this process's memory: the 20 requests the login rate lets through an hour.
    assert type(caches["default"]).__name__ in {"DatabaseCache", "RedisCache"}
    assert len(cache.get("throttle_login_203.0.113.7")) == 20
