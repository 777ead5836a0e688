"""Secrets (issue 9): a trader's whole session through the web pages and the API, an operator in the admin,
and a live bot whose cycles fail at the exchange; then every response, every log record, the database and
every Celery task sent are searched for the exchange keys, secrets and passphrases the trader typed in, as
they were typed and in base64. None is there, and the database holds them encrypted, readable with the key."""

import base64
import io
import logging
import re
from datetime import timedelta

import pytest
from celery import Celery
from celery.app.task import Task
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.management import call_command
from django.http import HttpRequest
from django.test import Client
from django.utils import timezone
from kombu.serialization import dumps
from rest_framework.test import APIClient

from accounts import crypto
from accounts.models import ExchangeAccount, User
from automation.cycle import Outside, run_cycle
from automation.models import Bot, CycleRun
from automation.schedule import slot_of
from notifications.models import Delivery
from tests.automation.test_cycle import FakeAnalyst
from tests.factories import force_login_verified, two_factor_device
from tests.market import conftest as market
from tradingai.celery import app

exchange_stand_in = market.exchange_stand_in  # Binance on 127.0.0.1, as the market tests have it

EMAIL = "trader@example.com"
PASSWORD = "lantern-quartz-4c1d9e7a2b"
# What the trader types in for their two exchange accounts: long, and found nowhere else by chance.
ON_THE_PAGE = {
    "api_key": "web-form-api-key-8f3e1c7d5b9a2f4e6d0c",
    "secret": "web-form-secret-2b7d9f1e3c5a8b0d4f6e",
    "password": "web-form-passphrase-6a0c4e8f2d1b9e7c",
}
THROUGH_THE_API = {
    "api_key": "rest-api-key-1d5f9b3e7a0c2e6f8b4d",
    "secret": "rest-api-secret-9e3a7c1f5d8b2e0a6c4f",
    "password": "rest-api-passphrase-3f7b1d9e5c0a8e2d",
}
# Notification channels' secrets (issue 19): a Telegram bot token on the page, a signed webhook's path
# token and signing key through the API. Nothing listens where they point: each failed cycle's notice is
# tried, fails, and is logged in the delivery log.
TELEGRAM_TOKEN = "987654321:AAFq0-telegram-token-7c2e9d4b1f6a3e8c5"
WEBHOOK_PATH_TOKEN = "webhook-path-token-4e8b2d6f0a9c1e3d"
SIGNING_KEY = "webhook-signing-key-5c9e1a7d3f0b8e2c"


def spellings(secret: str) -> dict[str, bytes]:
    """The secret as typed, and every stretch of base64 (standard or URL-safe) that encodes it alone: inside a
    longer encoded text it starts at one of three offsets, and only the characters away from its ends are
    decided by the secret's bytes alone."""
    raw = secret.encode()
    found = {"plain": raw}
    for offset in range(3):
        for name, encode in (("base64", base64.b64encode), ("url-safe base64", base64.urlsafe_b64encode)):
            found[f"{name}, offset {offset}"] = encode(b"\0" * offset + raw)[4 if offset else 0 : -4]
    return found


class Recording:
    """Keeps every response the test client got, headers and cookies included."""

    def __init__(self, responses: list, **defaults):
        super().__init__(**defaults)
        self.responses = responses

    def request(self, **request):
        response = super().request(**request)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        headers = [f"{name}: {value}" for name, value in response.items()] + [response.cookies.output()]
        head = "\n".join(headers)
        said = f"{request['REQUEST_METHOD']} {request['PATH_INFO']} → {response.status_code}"
        self.responses.append((said, head.encode() + b"\n\n" + body))
        if "messages" in response.cookies and response.cookies["messages"].value:
            # The flash messages travel signed and compressed in a cookie, where no search would see them;
            # Django decodes that cookie only in its storage class.
            decoded = CookieStorage(HttpRequest())._decode(response.cookies["messages"].value)
            self.responses.append((f"{said}, its messages", repr(decoded).encode()))
        if response.streaming:
            response.streaming_content = [body]  # read above; the test may read it again
        return response


class Browser(Recording, Client):
    pass


class ApiClient(Recording, APIClient):
    pass


class Records(logging.Handler):
    """Keeps each record as text."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.texts: list[str] = []

    def emit(self, record):
        # The line as a handler would write it (with the traceback), and the record's fields, for a handler
        # that writes them all (JSON logs write the `extra` fields and the arguments as well).
        self.texts.append(f"{self.format(record)}\n{vars(record)!r}")


@pytest.fixture
def logs():
    """Every log record the product's logging passes with LOG_LEVEL=DEBUG, while the test runs: the root
    logger at DEBUG, as that setting makes it; a logger that keeps a level of its own keeps it, for that is
    the product's configuration too (tradingai/settings/base.py). A logger that does not propagate is
    listened to directly: a leak into its own handlers is a leak all the same."""
    handler = Records()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    loggers = [root] + [
        logger
        for logger in root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.texts
    for logger in loggers:
        logger.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def sent_tasks(monkeypatch):
    """Every Celery message the code sends, as the broker would get it, and the task run at once here.

    Task.apply_async (which delay() and signatures go through) and Celery.send_task (sending by name) are
    the only two ways a message leaves for the broker; both are replaced by a recorder that serialises the
    arguments with the app's own serializer, as kombu would before publishing, then runs the task in this
    process as a worker would. Nothing reaches a real broker, which other test runs may share."""
    sent: list[tuple[str, str]] = []

    def record(name, args, kwargs):
        _, _, body = dumps((list(args or ()), dict(kwargs or {})), serializer=app.conf.task_serializer)
        sent.append((name, body if isinstance(body, str) else body.decode()))

    def apply_async(self, args=None, kwargs=None, **options):
        record(self.name, args, kwargs)
        return self.apply(args=args, kwargs=kwargs)

    def send_task(self, name, args=None, kwargs=None, **options):
        record(name, args, kwargs)
        return self.tasks[name].apply(args=args, kwargs=kwargs)

    monkeypatch.setattr(Task, "apply_async", apply_async)
    monkeypatch.setattr(Celery, "send_task", send_task)
    return sent


def new_bot_form(trader, **fields) -> dict:
    """The new-bot form as the page fills it in, with `fields` changed."""
    form = trader.get("/bots/new/").context["form"]
    filled = {name: form[name].value() for name in form.fields}
    return {name: value for name, value in {**filled, **fields}.items() if value is not None}


def test_no_secret_leaves_in_any_response_log_dump_or_task(
    db, exchange_stand_in, logs, sent_tasks, settings, django_capture_on_commit_callbacks
):
    settings.LIVE_TRADING_ENABLED = True
    # The exchange answers for its markets, but takes no key of the trader's: every signed call is refused.
    exchange_stand_in.api_key = "a-key-this-trader-was-never-given"
    responses: list[tuple[str, bytes]] = []

    # Sign up, look around, add an exchange account on the page, and again with a label already used.
    trader = Browser(responses)
    sent = trader.post("/accounts/signup/", {"email": EMAIL, "password1": PASSWORD, "password2": PASSWORD})
    assert sent.status_code == 200 and mail.outbox, sent.context["form"].errors
    link = re.search(r"https?://[^/]+(/\S+)", mail.outbox[-1].body).group(1)
    signed_up = trader.post(link, follow=True)
    assert signed_up.context["user"].email == EMAIL
    two_factor_device(signed_up.context["user"])  # live trading needs it
    for page in ("/", "/accounts/settings/", "/accounts/exchange-accounts/", "/accounts/api-tokens/"):
        assert trader.get(page).status_code == 200, page
    on_page = {"label": "main binance", "exchange": "binance", **ON_THE_PAGE}
    assert trader.post("/accounts/exchange-accounts/", on_page, follow=True).status_code == 200
    refused = trader.post("/accounts/exchange-accounts/", on_page)
    assert refused.status_code == 200 and "label" in refused.context["form"].errors

    # The API: a token for the password, an account added, the same label refused, the accounts listed.
    issued = ApiClient(responses).post("/api/v1/auth/token/", {"email": EMAIL, "password": PASSWORD})
    assert issued.status_code == 201
    api = ApiClient(responses, HTTP_AUTHORIZATION=f"Token {issued.json()['token']}")
    through_api = {"label": "okx", "exchange": "okx", **THROUGH_THE_API}
    assert api.post("/api/v1/exchange-accounts/", through_api, format="json").status_code == 201
    duplicate = api.post("/api/v1/exchange-accounts/", through_api, format="json")
    assert duplicate.status_code == 400 and "label" in duplicate.json()
    # Notification channels: a Telegram bot on the page, a signed webhook through the API.
    settings.TELEGRAM_API_BASE = "http://127.0.0.1:9"  # nothing listens on port 9: every send fails
    telegram = {"label": "phone", "kind": "TELEGRAM", "token": TELEGRAM_TOKEN, "target": "-100123"}
    assert trader.post("/notifications/", telegram).status_code == 302
    hook = {"label": "hook", "kind": "WEBHOOK", "url": f"http://127.0.0.1:9/{WEBHOOK_PATH_TOKEN}"}
    assert (
        api.post(
            "/api/v1/notification-channels/", {**hook, "hmac_key": SIGNING_KEY}, format="json"
        ).status_code
        == 201
    )
    for url in ("/api/v1/notification-channels/", "/api/v1/notification-deliveries/"):
        assert api.get(url).status_code == 200, url
    listed = api.get("/api/v1/exchange-accounts/").json()
    assert {row["label"] for row in listed} == {"main binance", "okx"}
    for row in listed:
        assert api.get(f"/api/v1/exchange-accounts/{row['id']}/").status_code == 200

    # A live bot on the page's account, started (the exchange lists its market), and a cycle that buys: its
    # order is signed with the key, which the exchange refuses.
    account = ExchangeAccount.objects.get(label="main binance")
    created = trader.post(
        "/bots/new/",
        new_bot_form(
            trader, name="live btc", exchange="binance", symbol="BTC/USDT", mode="LIVE",
            exchange_account=account.pk, live_confirmed="on",
        ),
    )  # fmt: skip
    assert created.status_code == 302, created.context["form"].errors
    bot = Bot.objects.get(name="live btc")
    for page in (f"/bots/{bot.pk}/", f"/bots/{bot.pk}/edit/"):
        assert trader.get(page).status_code == 200, page
    assert trader.post(f"/bots/{bot.pk}/start/", follow=True).status_code == 200
    bot.refresh_from_db()
    assert bot.status == Bot.Status.RUNNING
    now = slot_of(bot, timezone.now())
    buying = Outside(analyst=FakeAnalyst(band=0.05), chart=lambda *a: b"\x89PNG fake")
    refused_order = run_cycle(bot.pk, now - timedelta(hours=1), buying, on_schedule=False)
    assert (refused_order.status, refused_order.failed_step) == (CycleRun.Status.FAILED, "execute")
    assert "Invalid API-key" in refused_order.error  # the stand-in's answer: the key did reach it

    # Then the exchange cannot be reached at all: Run now sends the cycle's task, which fails at once.
    exchange_stand_in.stop()
    with django_capture_on_commit_callbacks(execute=True):
        assert trader.post(f"/bots/{bot.pk}/run-now/", follow=True).status_code == 200
    unreachable = CycleRun.objects.get(bot=bot, slot=now)
    assert (unreachable.status, unreachable.failed_step) == (CycleRun.Status.FAILED, "market_data")

    # Every page of the trader's, and the API's view of the same, after the failures.
    pages = ["/", f"/bots/{bot.pk}/", "/analyses/", "/trades/", "/insights/", "/accounts/settings/"]
    pages += [
        "/accounts/exchange-accounts/",
        "/accounts/api-tokens/",
        "/notifications/",
        "/notifications/deliveries/",
    ]
    for page in pages:
        assert trader.get(page).status_code == 200, page
    for url in ("/api/v1/bots/", f"/api/v1/bots/{bot.pk}/", "/api/v1/runs/", "/api/v1/tokens/"):
        assert api.get(url).status_code == 200, url

    # An operator opens every change list on the admin's index, and the change form of every row in it.
    operator = Browser(responses)
    force_login_verified(operator, User.objects.create_superuser("operator@example.com", "operator-password"))
    for app_entry in operator.get("/admin/").context["app_list"]:
        for entry in app_entry["models"]:
            changelist = entry["admin_url"]
            assert operator.get(changelist).status_code == 200, changelist
            for pk in entry["model"]._default_manager.values_list("pk", flat=True)[:20]:
                assert operator.get(f"{changelist}{pk}/change/").status_code == 200, (changelist, pk)
    assert operator.get("/admin/accounts/exchangeaccount/", {"q": "binance"}).status_code == 200

    # What was kept and what was said: the database, the sessions inside it, the logs, the tasks, the mail.
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    places = [*responses, ("the database dump", dump.getvalue().encode())]
    places += [(f"session {s.session_key}", repr(s.get_decoded()).encode()) for s in Session.objects.all()]
    places += [(f"log record {i}", text.encode()) for i, text in enumerate(logs)]
    places += [(f"task {name}", body.encode()) for name, body in sent_tasks]
    places += [(f"e-mail {m.subject}", m.message().as_bytes()) for m in mail.outbox]

    # Each search looks where the secrets would be if they leaked: the pages show the accounts, the dump
    # holds their encrypted columns, the logs tell both failures, and the Run now task was sent.
    accounts = {a.label: a for a in ExchangeAccount.objects.filter(owner__email=EMAIL)}
    assert set(accounts) == {"main binance", "okx"}
    shown = b"".join(body for said, body in responses if "/accounts/exchange-accounts/" in said)
    assert b"main binance" in shown and ON_THE_PAGE["api_key"][-4:].encode() in shown
    assert all(a.secret_encrypted in dump.getvalue() for a in accounts.values())
    assert any("failed in market_data" in text for text in logs)
    assert any(f"failed in {refused_order.failed_step}" in text for text in logs), refused_order.error
    # Run now, and the deliveries of its failed cycle's notice on both channels, each tried (and retried at
    # once, in this process) and failed; the first failure's deliveries wait for a commit that never comes
    # in this test's transaction.
    delivering = "notifications.tasks.deliver_task"
    assert sorted(name for name, _ in sent_tasks) == [
        "automation.tasks.run_cycle_task",
        delivering,
        delivering,
    ]
    assert sorted(Delivery.objects.values_list("status", flat=True)) == [
        "FAILED",
        "FAILED",
        "QUEUED",
        "QUEUED",
    ]
    assert any(said.startswith("GET /admin/accounts/exchangeaccount/") for said, _ in responses)

    typed = {"the page's": ON_THE_PAGE, "the API's": THROUGH_THE_API}
    secrets = {f"{whose} {name}": value for whose, fields in typed.items() for name, value in fields.items()}
    secrets["the trader's password"] = PASSWORD
    secrets |= {"the Telegram token": TELEGRAM_TOKEN, "the webhook's path token": WEBHOOK_PATH_TOKEN}
    secrets["the webhook's signing key"] = SIGNING_KEY
    leaks = [
        f"{name} ({form}) in {place}"
        for name, secret in secrets.items()
        for form, needle in spellings(secret).items()
        for place, text in places
        if needle in text
    ]
    assert not leaks, "\n".join(leaks)

    # Stored encrypted, and readable back with the key: the search above would find a plain column.
    for label, plain in (("main binance", ON_THE_PAGE), ("okx", THROUGH_THE_API)):
        account = accounts[label]
        stored = (account.api_key_encrypted, account.secret_encrypted, account.password_encrypted)
        typed_in = (plain["api_key"], plain["secret"], plain["password"])
        assert not set(stored) & set(typed_in)
        assert tuple(crypto.decrypt(value) for value in stored) == typed_in
        credentials = account.credentials()
        assert (credentials.api_key, credentials.secret, credentials.password) == typed_in
