"""Password guessing on the site's and the admin's sign-in forms is refused after repeated failures, even
with the right password, until the window has passed; a success starts the count afresh."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import LoginFailure
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def limits(settings):
    settings.LOGIN_FAILURES_PER_EMAIL = 3
    settings.LOGIN_FAILURES_PER_ADDRESS = 5
    settings.LOGIN_FAILURE_WINDOW_MINUTES = 15


def sign_in(client, email, password, path="/accounts/login/", address="203.0.113.7"):
    return client.post(path, {"username": email, "password": password}, REMOTE_ADDR=address)


def test_the_right_password_is_refused_after_three_failures_until_the_window_passes(client, alice, password):
    for _ in range(3):
        assert "Please enter a correct" in sign_in(client, "alice@example.com", "wrong").content.decode()
    refused = sign_in(client, "ALICE@example.com", password)
    assert refused.status_code == 200 and "Too many failed sign-ins: try again in 15 minutes" in (
        refused.content.decode()
    )
    assert "_auth_user_id" not in client.session

    LoginFailure.objects.update(at=timezone.now() - timedelta(minutes=16))
    assert sign_in(client, "alice@example.com", password).status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)
    assert not LoginFailure.objects.exists()


def test_a_success_starts_the_count_afresh_and_others_are_not_locked_out(client, alice, charlie, password):
    for _ in range(2):
        sign_in(client, "alice@example.com", "wrong")
    assert sign_in(client, "alice@example.com", password).status_code == 302
    client.logout()
    for _ in range(2):
        sign_in(client, "alice@example.com", "wrong")
    assert sign_in(client, "alice@example.com", password).status_code == 302  # 2 since the success
    client.logout()

    for _ in range(3):
        sign_in(client, "alice@example.com", "wrong", address="198.51.100.1")
    assert sign_in(client, "charlie@example.com", password, address="198.51.100.2").status_code == 302


def test_one_address_guessing_many_accounts_is_refused(client, db, password):
    for n in range(5):
        sign_in(client, f"nobody{n}@example.com", "guess")  # accounts that need not exist
    UserFactory(email="victim@example.com")
    refused = sign_in(client, "victim@example.com", password)
    assert "Too many failed sign-ins" in refused.content.decode()
    assert sign_in(client, "victim@example.com", password, address="192.0.2.9").status_code == 302


def test_the_admin_sign_in_is_throttled_too(client, db, password):
    UserFactory(email="operator@example.com", is_staff=True, is_superuser=True)
    for _ in range(3):
        sign_in(client, "operator@example.com", "wrong", path="/admin/login/")
    refused = sign_in(client, "operator@example.com", password, path="/admin/login/")
    assert refused.status_code == 200 and "Too many failed sign-ins" in refused.content.decode()
