"""Isolation (issue 9): charlie walks every URL of the web UI, the API and the admin against alice's objects
and finds nothing of hers. The URLs come from the resolver, not from a list kept by hand, so a new URL is
walked as soon as it exists, or fails this test, by name, until its parameters are mapped here."""

import html
import itertools
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from accounts.models import ApiToken, ExchangeAccount
from automation.backtest_start import backtest_start
from automation.backtests import backtest_run
from automation.cycle import Outside, run_cycle
from automation.models import AutomationSession, Backtest, Bot, CycleRun
from automation.run_now import bot_run_now
from automation.services import bot_start
from learning import ml
from learning.models import AILearningData, LearnedPolicy
from learning.policy import pin
from tests.api.conftest import client_of
from tests.factories import BotFactory, import_eurusd

# Names no page of charlie's has any reason to contain, so finding one in a response is a leak.
BOT_NAME = "alice-eurusd-learner-4e1b"
ACCOUNT_LABEL = "alice-kraken-account-91c7"
TOKEN_NAME = "alice-cron-token-5d2a"
API_KEY = "alice-isolation-api-key-7d41c2e9b0"
SECRET = "alice-isolation-secret-0b6f5a1d93"
PASSPHRASE = "alice-isolation-passphrase-c8e27f"
CONNECTION_LABEL = "alice-ollama-connection-6b2e"
MODEL_KEY = "alice-isolation-model-key-95e0c4"
# Her bot's own chart (as a TradingView capture is): no response to charlie may carry it
# (tests/security/test_chart_isolation.py follows charts through other users' cycles).
CHART = b"\x89PNG the chart alice-isolation-chart-3f90 analyst saw"
CHANNEL_LABEL = "alice-desk-channel-6b2e"
WEBHOOK_URL = "http://127.0.0.1:9/alice-isolation-hook-a71d"
HMAC_KEY = "alice-isolation-signing-key-0c4f"

FIRST_SLOT = datetime(2017, 10, 2, 0, tzinfo=UTC)  # a Monday of the shipped EUR/USD hours
CYCLES = 40  # enough for closed trades, insight snapshots and a learned policy with the thresholds below

# Counted by hand on the URL confs (tradingai/urls.py, tradingai/api.py, each app's urls.py and the admin):
# API 69 = 5 single views + 12 router lists, 12 details and 6 actions, each also with a format suffix (60)
# + the API root twice + schema + docs; admin 243 = 8 site views + 38 registered models x 6 + the user's
# password page, the kill switch's flip, the LLM usage page and the TOTP device's config and QR pages + the
# app index + the catch-all; UI 47 = 22 in accounts + 14 in automation + 3 in learning + 2 in trades + 5 in
# notifications + metrics.
PATTERNS_COUNTED_BY_HAND = 69 + 243 + 47

# Patterns whose parameters name no object a user owns, with what is walked instead and why.
NO_USER_OBJECT = {
    "signup_confirm": "the link of a sign-up e-mail, whose key is the only way in: walked with a forged key, "
    "which must give the invalid-link page (404) and make no account",
    "password_reset_confirm": "the link of a reset e-mail: walked with alice's uid and a forged token, which "
    "must give the invalid-link page and nothing of hers",
    "admin:app_list": "an app's index in the admin takes an app label; each label is walked",
    "admin:<catch-all>": "the admin's catch-all takes any path; walked with one naming alice's bot",
}
# Admin models that belong to no user (the operator's settings, market data every bot shares): their pages
# are walked with any row's id, or 1 when there is none, since charlie must be turned away from all of them.
SHARED_ADMIN_MODELS = {
    "auth.group": "operators' permission groups",
    "accounts.plan": "the operator's catalogue of plans",
    "axes.accessattempt": "failed sign-ins by the address typed, which need not be an account: operators'",
    "axes.accesslog": "sign-ins by the address typed, for operators",
    "axes.accessfailurelog": "failed sign-ins by the address typed, for operators",
    "market.candle": "candles are stored once per market for every bot",
    "market.indicatorset": "indicators are computed once per market candle for every bot",
    "market.storedmarket": "what is known of a stored market (its splits, its costs), for every bot on it",
    "automation.heartbeat": "the workers' heartbeat",
    "automation.killswitch": "the operator's global switch",
    "automation.metrictotal": "the product's metrics, summed over every user",
    "automation.modelprice": "the operator's table of model prices",
    "learning.analystanswer": "one analyst request's answer, shared by every bot that made the same request",
    "django_celery_beat.periodictask": "the platform's own periodic tasks (a bot's schedule is on the bot)",
    "django_celery_beat.crontabschedule": "the platform's own periodic tasks (the dispatcher's minute)",
    "django_celery_beat.intervalschedule": "the platform's own periodic tasks",
    "django_celery_beat.solarschedule": "not used by bots",
    "django_celery_beat.clockedschedule": "not used by bots",
}


@dataclass(frozen=True)
class Pattern:
    parts: tuple  # the RoutePattern/RegexPattern of each level, root first
    name: str
    callback: object

    @property
    def route(self) -> str:
        return "".join(str(part) for part in self.parts)

    @property
    def names_an_object(self) -> bool:
        # A format suffix (bots.json) is another spelling of the same page, not an object.
        return any(param != "format" for param in self.params)

    @property
    def params(self) -> list[str]:
        names = []
        for part in self.parts:
            names += list(part.converters) if isinstance(part, RoutePattern) else list(part.regex.groupindex)
        return names

    def area(self) -> str:
        return (
            "admin" if self.route.startswith("admin/") else "api" if self.route.startswith("api/") else "ui"
        )


def all_patterns(entries=None, parents=(), namespace="") -> list[Pattern]:
    found = []
    for entry in get_resolver().url_patterns if entries is None else entries:
        parts = (*parents, entry.pattern)
        if isinstance(entry, URLResolver):
            found += all_patterns(entry.url_patterns, parts, entry.namespace or namespace)
        else:
            name = entry.name or (
                "<catch-all>" if "(?P<url>.*)" in str(entry.pattern) else str(entry.pattern)
            )
            found.append(Pattern(parts, f"{namespace}:{name}" if namespace else name, entry.callback))
    return found


GROUP = re.compile(r"\(\?P<(\w+)>")
ROUTE_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")


def regex_groups(regex: str) -> dict[str, tuple[int, int, str]]:
    """Each named group of a regex: where it starts and ends, and its body."""
    groups = {}
    for match in GROUP.finditer(regex):
        depth, end = 1, match.end()
        while depth:
            if regex[end] == "\\":
                end += 1
            else:
                depth += {"(": 1, ")": -1}.get(regex[end], 0)
            end += 1
        groups[match[1]] = (match.start(), end, regex[match.end() : end - 1])
    return groups


def url_of(pattern: Pattern, values: dict) -> str:
    url = ""
    for part in pattern.parts:
        if isinstance(part, RoutePattern):
            url += ROUTE_PARAM.sub(lambda m, p=part: str(p.converters[m[1]].to_url(values[m[1]])), str(part))
        else:
            regex = part.regex.pattern
            for start, end, _ in sorted(regex_groups(regex).values(), reverse=True):
                name = GROUP.match(regex, start)[1]
                regex = regex[:start] + str(values[name]) + regex[end:]
            url += regex.removeprefix("^").removesuffix("$").replace("/?", "/").replace("\\.", ".")
    return "/" + url


def _as_kwargs(values: dict) -> dict:
    return {name: str(value) for name, value in values.items()}


def choices(pattern: Pattern, param: str) -> list[str] | None:
    """The alternatives of a regex group that is a plain list of words, e.g. start|stop|run-now."""
    for part in pattern.parts:
        if isinstance(part, RegexPattern) and param in part.regex.groupindex:
            body = regex_groups(part.regex.pattern)[param][2]
            if re.fullmatch(r"[\w-]+(\|[\w-]+)*", body):
                return body.split("|")
    return None


def segment_before(pattern: Pattern, param: str) -> str:
    """The path segment naming what the parameter is: "bots" in bots/<int:pk>/ and ^bots/(?P<pk>[^/.]+)/$."""
    at = re.search(rf"<(?:\w+:)?{param}>|\(\?P<{param}>", pattern.route).start()
    return [segment for segment in pattern.route[:at].replace("^", "").split("/") if segment][-1]


class Unmapped(Exception):
    pass


# What the segment before an id names, in the UI's and the API's URLs.
SEGMENTS = {
    "bots": "automation.bot", "sessions": "automation.automationsession", "runs": "automation.cyclerun",
    "analyses": "learning.ailearningdata", "trades": "trades.trade",
    "exchange-accounts": "accounts.exchangeaccount", "tokens": "accounts.apitoken",
    "api-tokens": "accounts.apitoken", "audit-events": "accounts.auditevent",
    "models": "accounts.modelconnection", "model-connections": "accounts.modelconnection",
    "totpdevice": "otp_totp.totpdevice", "backtests": "automation.backtest",
    "channels": "notifications.channel",
    "notification-channels": "notifications.channel", "notification-deliveries": "notifications.delivery",
}  # fmt: skip


def values_for(pattern: Pattern, her: "Alice") -> list[dict]:
    """Every set of values for the pattern's parameters that names alice's objects."""
    if pattern.name == "password_reset_confirm":
        return [{"uidb64": urlsafe_base64_encode(force_bytes(her.user.pk)), "token": "forged-reset-token"}]
    if pattern.name == "signup_confirm":
        return [{"key": "forged-signup-key"}]
    if pattern.name == "admin:view_on_site":
        return [{"content_type_id": ContentType.objects.get_for_model(Bot).pk, "object_id": her.bot.pk}]
    options = {}
    for param in pattern.params:
        if param == "format":
            options[param] = ["json"]
        elif words := choices(pattern, param):
            options[param] = words
        elif param == "url" and pattern.name == "admin:<catch-all>":
            options[param] = [f"no-such-app/bot/{her.bot.pk}/"]
        elif pattern.area() == "admin" and param in ("object_id", "id"):
            app_label, model_name = pattern.route.split("/")[1:3]
            options[param] = [her.admin_object_id(f"{app_label}.{model_name}", pattern)]
        elif param == "pk" and segment_before(pattern, param) in SEGMENTS:
            options[param] = [her.owned[SEGMENTS[segment_before(pattern, param)]].pk]
        else:
            raise Unmapped(f"{pattern.name} ({pattern.route}): no object of alice's for '{param}'")
    names = list(options)
    return [
        dict(zip(names, combination, strict=True)) for combination in itertools.product(*options.values())
    ]


@dataclass
class Alice:
    user: object
    bot: Bot
    analysis: AILearningData
    token: ApiToken
    plain_token: str
    owned: dict  # "app_label.model_name" -> the object of hers that charlie aims at

    def admin_object_id(self, label: str, pattern: Pattern):
        if label in self.owned:
            return self.owned[label].pk
        if label in SHARED_ADMIN_MODELS:
            return apps.get_model(label).objects.values_list("pk", flat=True).first() or 1
        raise Unmapped(f"{pattern.name} ({pattern.route}): '{label}' is neither alice's nor shared")

    def markers(self) -> dict[str, str]:
        """What of hers must never reach charlie, by name."""
        return {
            "email": self.user.email, "bot name": BOT_NAME, "account label": ACCOUNT_LABEL,
            "token name": TOKEN_NAME, "token hint": self.token.hint, "api key": API_KEY, "secret": SECRET,
            "passphrase": PASSPHRASE, "connection label": CONNECTION_LABEL, "model key": MODEL_KEY,
            "reasoning": self.analysis.analysis_data["reasoning"],
            "summary": self.analysis.analysis_data["summary"],
            "chart": CHART[len(b"\x89PNG ") :].decode(), "channel": CHANNEL_LABEL,
            "webhook url": WEBHOOK_URL.rsplit("/", 1)[1], "signing key": HMAC_KEY,
        }  # fmt: skip


@pytest.fixture
def her(alice, charlie, settings) -> Alice:
    """Alice with one of everything, made as the product makes it: her exchange account through the web form,
    the rest by real cycles of her running paper bot over the shipped candles."""
    settings.LEARNING_MIN_SAMPLES = 5  # so that 40 cycles learn a policy
    settings.ML_MIN_SAMPLES = 10  # and train an outcome model
    import_eurusd()
    browser = Client()
    browser.force_login(alice)
    added = browser.post(
        "/accounts/exchange-accounts/",
        {
            "label": ACCOUNT_LABEL,
            "exchange": "kraken",
            "api_key": API_KEY,
            "secret": SECRET,
            "password": PASSPHRASE,
        },
    )
    assert added.status_code == 302
    account = ExchangeAccount.objects.get(owner=alice)
    # Her notification channel and a switch, through the page, before the cycles whose trades she is told of.
    added = browser.post(
        "/notifications/",
        {"label": CHANNEL_LABEL, "kind": "WEBHOOK", "url": WEBHOOK_URL, "hmac_key": HMAC_KEY},
    )
    assert added.status_code == 302
    browser.post("/notifications/switches/", {"TRADE_OPENED": "on", "TRADE_CLOSED": "on"})
    connected = browser.post(
        "/accounts/models/",
        {"label": CONNECTION_LABEL, "base_url": "http://127.0.0.1:11434/v1", "api_key": MODEL_KEY},
    )
    assert connected.status_code == 302
    bot = BotFactory(
        owner=alice, name=BOT_NAME, exchange="sample", symbol="EUR/USD", timeframe="1h",
        analyst=Bot.Analyst.TECHNICAL, max_open_trades=3, exchange_account=account,
    )  # fmt: skip
    bot_start(bot)
    outside = Outside(chart=lambda *a: CHART)
    for hour in range(CYCLES):
        run_cycle(bot.pk, FIRST_SLOT + timedelta(hours=hour), outside)
    pin(bot, min_confidence=65.0, size_factor=None, avoid_conditions=None)
    bot_run_now(bot)  # counted against her plan (a RunNowRequest); queued only on commit, which never comes
    model = ml.train(alice, until=FIRST_SLOT + timedelta(days=30))
    token, plain = ApiToken.issue(alice, TOKEN_NAME)
    # Her backtest of a few days, run to its report as the task runs it.
    backtest = backtest_start(
        Backtest(
            owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", start=FIRST_SLOT,
            end=FIRST_SLOT + timedelta(days=2),
        )
    )  # fmt: skip
    backtest_run(backtest.pk)
    # The analysis charlie aims at has a chart and a trade, so a leak of either would show.
    analysis = AILearningData.objects.filter(user=alice, trade__isnull=False).exclude(screenshot="").first()
    BotFactory(owner=charlie, name="charlie's own bot")  # his pages are not empty states

    owned = {
        "accounts.user": alice, "accounts.exchangeaccount": account, "accounts.apitoken": token,
        "automation.bot": bot, "automation.automationsession": bot.sessions.get(),
        "automation.cyclerun": analysis.cycle_run, "learning.ailearningdata": analysis,
        "learning.promptversion": analysis.prompt_version, "trades.trade": analysis.trade,
        "learning.learnedpolicy": LearnedPolicy.objects.filter(bot=bot).first(),
        "learning.trainedmodel": model,
        "otp_totp.totpdevice": TOTPDevice.objects.create(user=alice, name="phone", confirmed=True),
        "automation.backtest": Backtest.objects.get(pk=backtest.pk, status=Backtest.Status.DONE),
    }  # fmt: skip
    # Any other model a user owns (by a `user` or `owner` field) is aimed at with one of hers, so a new
    # one is walked too, or named below until the fixture gives her one.
    for model, owner_field in owned_models(type(alice)):
        if model._meta.label_lower not in owned:
            owned[model._meta.label_lower] = model.objects.filter(**{owner_field: alice}).first()
    missing = [label for label, obj in owned.items() if obj is None]
    assert not missing, f"alice has no {missing}: give her one, so that charlie's walk aims at it"
    return Alice(alice, bot, analysis, token, plain, owned)


def owned_models(user_model):
    """Each model of the project's own apps (not those installed as packages, such as the admin's log of
    operators' changes) that a user owns directly, with the field naming the owner."""
    for model in apps.get_models():
        if "site-packages" in model._meta.app_config.path:
            continue
        for field in model._meta.fields:
            if field.name in ("user", "owner") and field.related_model is user_model:
                yield model, field.name


def her_rows(her: Alice) -> dict[str, list[dict]]:
    """Everything of alice's, field by field: equal before and after means charlie changed nothing."""
    user = her.user
    querysets = {
        model._meta.label: model.objects.filter(**{f: user}) for model, f in owned_models(type(user))
    }
    querysets |= {
        "user": type(user).objects.filter(pk=user.pk),
        "sessions": AutomationSession.objects.filter(bot__owner=user),
        "runs": CycleRun.objects.filter(bot__owner=user),
        "policies": LearnedPolicy.objects.filter(bot__owner=user),
    }
    return {name: list(queryset.order_by("pk").values()) for name, queryset in querysets.items()}


def as_written(text: str) -> set[bytes]:
    """The ways a page, a JSON body or a URL may write the text."""
    forms = {text, html.escape(text), json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
    return {form.encode() for form in forms} | {quote(text).encode()}


def content_of(response) -> bytes:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    headers = "\n".join(f"{name}: {value}" for name, value in response.items())
    return headers.encode() + b"\n\n" + body


def api_bot_filters(api) -> set[str]:
    """The API paths whose documented GET takes a `bot` query parameter: those must refuse her bot."""
    schema = api.get("/api/schema/", {"format": "json"}).json()
    return {
        path
        for path, operations in schema["paths"].items()
        if any(
            p["in"] == "query" and p["name"] == "bot" for p in operations.get("get", {}).get("parameters", [])
        )
    }


# Object URLs answer charlie with nothing (404), or refuse the method before looking (405). The admin turns a
# user who is not staff away (302 to its login page, or 403), its login page tells him he is not authorised
# (200), and its catch-all finds nothing (404).
OBJECT_STATUS = {"api": {404, 405}, "ui": {404, 405}, "admin": {302, 403, 404}}
# Pages and lists with no object in their URL are his own, so any data-free answer goes: a page (200), a
# redirect (302: login and sign-up send a signed-in user on), a refused filter (400), a method (405).
LIST_STATUS = {"api": {200, 400, 405}, "ui": {200, 302, 405}, "admin": {302, 403, 404}}
# Pages for operators outside the admin, which turn a user away (401) whatever he asks.
OPERATORS_ONLY = {"metrics": "the product's metrics: the bearer token or a staff sign-in (tradingai.metrics)"}
WRITE_BODY = {"name": "charlie's now", "label": "charlie's now", "min_confidence": 1, "mode": "SIMULATION"}


class Walk:
    """Charlie's requests, each checked for alice's data and for its status; what went wrong, as it went."""

    def __init__(self, charlie, her: Alice):
        self.her = her
        self.browser = Client()
        self.browser.force_login(charlie)
        self.api = client_of(charlie)
        self.markers = {name: as_written(text) for name, text in her.markers().items()}
        self.bot_filters = api_bot_filters(self.api)
        self.failures: list[str] = []

    def pattern(self, pattern: Pattern) -> None:
        try:
            value_sets = values_for(pattern, self.her)
        except Unmapped as e:
            self.failures.append(str(e))
            return
        for values in value_sets:
            url = url_of(pattern, values)
            match = resolve(url)  # the URL built must reach this pattern, or the walk proves nothing
            reached = {name: str(match.kwargs.get(name)) for name in values}
            assert (match.func, reached) == (pattern.callback, _as_kwargs(values)), url
            if pattern.area() == "admin":
                self.admin(pattern, url)
            elif not pattern.names_an_object:
                self.listing(pattern, url)
            elif pattern.name in NO_USER_OBJECT:
                expected = {404} if pattern.name == "signup_confirm" else {200}
                for method in ("get", "post"):
                    self.expect(pattern, self.request(pattern, method, url), expected)
            else:
                self.her_object(pattern, url)

    def admin(self, pattern: Pattern, url: str) -> None:
        expected = {200} if pattern.name == "admin:login" else OBJECT_STATUS["admin"]
        if pattern.names_an_object:
            for method in ("get", "post"):
                self.expect(pattern, self.request(pattern, method, url), expected)
        else:
            self.expect(pattern, self.request(pattern, "get", url, {"bot": self.her.bot.pk}), expected)

    def listing(self, pattern: Pattern, url: str) -> None:
        """A list or page of his own, asked for alice's bot in its filter."""
        response = self.request(pattern, "get", url, {"bot": self.her.bot.pk})
        if response is None:
            return
        form = (response.context or {}).get("form")
        if pattern.area() == "api" and url.replace(".json/", "/") in self.bot_filters:
            self.expect(pattern, response, {400})
            if "bot" not in response.json():
                self.failures.append(f"GET {url}?bot= ({pattern.name}): a 400 that does not name the filter")
        elif pattern.name in OPERATORS_ONLY:
            self.expect(pattern, response, {401})
        elif pattern.area() == "ui" and form is not None and "bot" in form.fields:
            self.expect(pattern, response, {200})
            if "bot" not in form.errors:
                self.failures.append(f"GET {url}?bot= ({pattern.name}): her bot taken as a filter")
        else:
            self.expect(pattern, response, LIST_STATUS[pattern.area()])

    def her_object(self, pattern: Pattern, url: str) -> None:
        """Every method on a URL naming her object: reads, and writes that would change or delete it."""
        methods = ["get", "post", "put", "patch", "delete"] if pattern.area() == "api" else ["get", "post"]
        answers = [self.request(pattern, method, url, WRITE_BODY) for method in methods]
        for answer in answers:
            self.expect(pattern, answer, OBJECT_STATUS[pattern.area()])
        # A 405 to every method would prove nothing about her object: one must have looked it up.
        if 404 not in {answer.status_code for answer in answers if answer}:
            self.failures.append(f"{url} ({pattern.name}): no method looked her object up")

    def request(self, pattern: Pattern, method: str, url: str, data=None):
        said = f"{method.upper()} {url} ({pattern.name})"
        try:
            if pattern.area() == "api":
                response = getattr(self.api, method)(url, data, format=None if method == "get" else "json")
            else:
                response = getattr(self.browser, method)(url, data or {})
        except Exception as e:  # the test client raises what would have been a 500
            self.failures.append(f"{said}: raised {e!r}")
            return None
        content = content_of(response)
        leaked = [name for name, forms in self.markers.items() if any(form in content for form in forms)]
        if leaked:
            self.failures.append(f"{said}: {response.status_code} shows alice's {', '.join(leaked)}")
        location = response.get("Location", "")
        if response.status_code == 302 and pattern.area() == "admin" and not location.startswith("/admin/"):
            self.failures.append(f"{said}: sent out of the admin, to {location}")
        return response

    def expect(self, pattern: Pattern, response, statuses: set[int]) -> None:
        if response is not None and response.status_code not in statuses:
            asked = f"{response.request['REQUEST_METHOD']} {response.request['PATH_INFO']}"
            self.failures.append(
                f"{asked} ({pattern.name}): {response.status_code}, expected one of {sorted(statuses)}"
            )


def test_charlie_walks_every_url_and_finds_nothing_of_alices(her, charlie):
    walk = Walk(charlie, her)
    before = her_rows(her)
    patterns = all_patterns()

    for pattern in patterns:
        walk.pattern(pattern)

    assert not walk.failures, "\n".join(walk.failures)
    assert len(patterns) >= PATTERNS_COUNTED_BY_HAND
    assert walk.bot_filters  # the schema was read: the lists that filter by bot are known

    # Nothing charlie sent changed anything of hers: the same rows, field by field; her bot still runs; her
    # token still opens her API.
    assert her_rows(her) == before
    her.bot.refresh_from_db()
    assert her.bot.status == Bot.Status.RUNNING
    hers = APIClient()
    hers.credentials(HTTP_AUTHORIZATION=f"Token {her.plain_token}")
    assert [row["name"] for row in hers.get("/api/v1/bots/").json()] == [BOT_NAME]
