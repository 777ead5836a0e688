"""Issue 15, findings 6 and 11: a new password ends the user's other sessions and revokes their API tokens;
sign-up and password reset answer the same whether the address has an account; reset mail is rate-limited."""

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiToken, User

NEW_PASSWORD = "a brand new pass 4821"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.PASSWORD_RESETS_PER_HOUR = 5


def api_with(plain: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
    return client


def link_in(message) -> str:
    return re.search(r"https?://[^/]+(/\S+)", message.body).group(1)


def reset_password(client: Client, email: str, password: str):
    client.post(reverse("password_reset"), {"email": email})
    form_url = client.get(link_in(mail.outbox[-1]))["Location"]
    return client.post(form_url, {"new_password1": password, "new_password2": password}, follow=True)


def test_a_token_issued_before_a_password_reset_is_refused_after_it(client, alice):
    """Finding 6: a token issued before the reset still answered 200."""
    _, plain = ApiToken.issue(alice, "cron job")
    assert api_with(plain).get("/api/v1/bots/").status_code == 200
    elsewhere = Client()
    elsewhere.force_login(alice)

    done = reset_password(client, "alice@example.com", NEW_PASSWORD)
    assert "signed out everywhere else, and 1 API token revoked" in done.content.decode()
    assert api_with(plain).get("/api/v1/bots/").status_code == 401
    assert not ApiToken.objects.filter(user=alice).exists()
    assert elsewhere.get(reverse("dashboard")).status_code == 302  # to the login page


def test_a_password_change_keeps_this_session_ends_the_others_and_revokes_tokens(
    alice_client, alice, password
):
    plains = [ApiToken.issue(alice, name)[1] for name in ("laptop", "server")]
    elsewhere = Client()
    elsewhere.force_login(alice)

    changed = alice_client.post(
        reverse("password_change"),
        {"old_password": password, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert "signed out everywhere else, and 2 API tokens revoked" in changed.content.decode()
    assert alice_client.get(reverse("dashboard")).status_code == 200
    assert elsewhere.get(reverse("dashboard")).status_code == 302
    assert {api_with(plain).get("/api/v1/bots/").status_code for plain in plains} == {401}


def test_a_reset_lifts_the_lockout_it_offers_as_the_way_back(client, settings, alice):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        client.post(reverse("login"), {"username": "alice@example.com", "password": "wrong"})
    reset_password(client, "alice@example.com", NEW_PASSWORD)
    signed_in = client.post(reverse("login"), {"username": "alice@example.com", "password": NEW_PASSWORD})
    assert signed_in.status_code == 302


def sign_up(client, email):
    return client.post(
        reverse("signup"), {"email": email, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )


def test_sign_up_with_a_taken_address_shows_the_same_page_as_with_a_new_one(client, alice):
    """Finding 11: sign-up said "already exists", telling anyone which addresses have an account."""
    taken = sign_up(client, "Alice@Example.com")
    new = sign_up(Client(), "Newcomer@Example.com")
    assert taken.status_code == new.status_code == 200
    assert taken.content.decode().replace("alice@example.com", "X") == new.content.decode().replace(
        "newcomer@example.com", "X"
    )
    # The owner of the taken address is told; the new address gets the link that makes its account.
    to_alice, to_newcomer = mail.outbox
    assert to_alice.to == ["alice@example.com"] and "already has an account" in to_alice.body
    assert reverse("password_reset") in to_alice.body and "/signup/confirm/" not in to_alice.body
    assert User.objects.count() == 1 and User.objects.get().password == alice.password

    confirm = link_in(to_newcomer)
    assert "Finish signing up" in client.get(confirm).content.decode()  # a GET (a mail scanner) makes nothing
    assert not User.objects.filter(email="newcomer@example.com").exists()
    created = client.post(confirm)
    assert created.status_code == 302 and created["Location"] == reverse("dashboard")
    newcomer = User.objects.get(email="newcomer@example.com")
    assert newcomer.check_password(NEW_PASSWORD)
    assert client.get(reverse("dashboard")).context["user"] == newcomer
    assert client.post(confirm).status_code == 404  # a link makes one account, once


def test_password_reset_answers_the_same_whether_the_address_exists(client, alice):
    known = client.post(reverse("password_reset"), {"email": "alice@example.com"}, follow=True)
    unknown = client.post(reverse("password_reset"), {"email": "nobody@example.com"}, follow=True)
    assert known.redirect_chain == unknown.redirect_chain
    assert known.content == unknown.content
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]


def test_the_sixth_reset_request_in_the_hour_sends_no_mail(client, alice):
    """Finding 11: password-reset mail was not rate-limited."""
    answers = [
        client.post(reverse("password_reset"), {"email": "alice@example.com"}, REMOTE_ADDR=f"192.0.2.{n}")
        for n in range(6)  # from six addresses: the limit per e-mail address holds
    ]
    assert {(a.status_code, a["Location"]) for a in answers} == {(302, reverse("password_reset_done"))}
    assert len(mail.outbox) == 5
    # One address asking for many e-mail addresses is limited too.
    for n in range(6):
        User.objects.create_user(f"user{n}@example.com", "x")
        client.post(reverse("password_reset"), {"email": f"user{n}@example.com"}, REMOTE_ADDR="198.51.100.4")
    assert len(mail.outbox) == 5 + 5
