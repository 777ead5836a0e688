import re

from django.core import mail
from django.urls import reverse

from accounts.models import User


def test_sign_up_mails_a_link_that_makes_the_account_and_logs_the_new_user_in(client, db):
    response = client.post(
        reverse("signup"),
        {
            "email": "New.Trader@Example.com",
            "password1": "a long enough pass 42",
            "password2": "a long enough pass 42",
        },
    )
    assert response.status_code == 200 and "Check your e-mail" in response.content.decode()
    assert not User.objects.exists()
    link = re.search(r"https?://[^/]+(/\S+)", mail.outbox[0].body).group(1)
    response = client.post(link)
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    user = User.objects.get()
    assert user.email == "new.trader@example.com"
    assert client.get(reverse("dashboard")).context["user"] == user


def test_sign_up_rejects_a_weak_password(client, db):
    response = client.post(
        reverse("signup"), {"email": "bob@example.com", "password1": "12345", "password2": "12345"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["password2"]
    assert not User.objects.exists() and not mail.outbox


def test_login_with_email_is_case_insensitive_and_wrong_password_is_refused(client, alice, password):
    response = client.post(reverse("login"), {"username": "Alice@Example.com", "password": password})
    assert response.status_code == 302
    client.post(reverse("logout"))
    response = client.post(reverse("login"), {"username": "alice@example.com", "password": "wrong"})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()


def test_pages_need_login(client, db):
    for name in ("dashboard", "bot_create", "exchange_accounts", "password_change"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_logout_ends_the_session(alice_client):
    alice_client.post(reverse("logout"))
    assert alice_client.get(reverse("dashboard")).status_code == 302


def test_password_change(alice_client, alice, password):
    response = alice_client.post(
        reverse("password_change"),
        {
            "old_password": password,
            "new_password1": "another long pass 77",
            "new_password2": "another long pass 77",
        },
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("another long pass 77")


def test_password_reset_by_email_link(client, alice):
    client.post(reverse("password_reset"), {"email": "alice@example.com"})
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/\S+)", mail.outbox[0].body).group(1)
    # Django redirects the token URL to one with a session-held token before showing the form.
    form_url = client.get(link)["Location"]
    response = client.post(
        form_url, {"new_password1": "reset long pass 99", "new_password2": "reset long pass 99"}
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("reset long pass 99")
