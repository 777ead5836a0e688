"""`screenshots OUTDIR`: a PNG of every main page at each width, as a user of the site sees it, and how much
each page is wider than the screen."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.urls import reverse
from selenium import webdriver

from accounts.models import User
from automation.browser import (
    chromium,
    full_page_png,
    horizontal_overflow,
    log_in,
    overflowing_elements,
    wait_for_plots,
)
from automation.demo import DEMO_EMAIL
from automation.models import Backtest, Bot
from learning.models import AILearningData
from trades.models import Trade

# The pages seen logged out; main_pages lists them first.
LOGGED_OUT = ("login", "signup", "password_reset")
# Plotly draws a page's plots in well under a second; a plot still missing after this will not come.
PLOT_TIMEOUT = 30


def main_pages(user: User) -> tuple[list[tuple[str, str]], list[str]]:
    """The site's main pages as (URL name, path), the logged-out ones first, then those of `user`, whose
    objects the detail pages show; and a note for each page left out because the user has no such object."""
    pages = [(name, reverse(name)) for name in (*LOGGED_OUT, "dashboard", "bot_create")]
    skipped = []
    bot = Bot.objects.filter(owner=user).order_by("pk").first()
    if bot:
        pages += [(name, reverse(name, args=[bot.pk])) for name in ("bot_detail", "bot_edit")]
    else:
        skipped.append(f"bot_detail, bot_edit: skipped, {user.email} has no bot")
    pages.append(("analysis_list", reverse("analysis_list")))
    charted = AILearningData.objects.filter(user=user).exclude(screenshot="").order_by("-created_at", "-pk")
    if analysis := charted.first():
        pages.append(("analysis_detail", reverse("analysis_detail", args=[analysis.pk])))
    else:
        skipped.append(f"analysis_detail: skipped, {user.email} has no analysis with a chart")
    pages.append(("trade_list", reverse("trade_list")))
    trades = Trade.objects.filter(owner=user).order_by("-created_at", "-pk")
    if trade := trades.filter(status=Trade.Status.CLOSED).first() or trades.first():
        pages.append(("trade_detail", reverse("trade_detail", args=[trade.pk])))
    else:
        skipped.append(f"trade_detail: skipped, {user.email} has no trade")
    pages += [(name, reverse(name)) for name in ("insights", "backtest_list", "backtest_create")]
    backtests = Backtest.objects.filter(owner=user).order_by("-created_at", "-pk")
    if backtest := backtests.filter(status=Backtest.Status.DONE).first() or backtests.first():
        pages.append(("backtest_detail", reverse("backtest_detail", args=[backtest.pk])))
    else:
        skipped.append(f"backtest_detail: skipped, {user.email} has no backtest")
    names = (
        "help_policy", "settings", "exchange_accounts", "model_connections", "api_tokens", "audit_log",
        "password_change", "notifications", "deliveries",
    )  # fmt: skip
    pages += [(name, reverse(name)) for name in names]
    if connection := user.model_connections.order_by("pk").first():
        pages.append(("model_connection_edit", reverse("model_connection_edit", args=[connection.pk])))
    else:
        skipped.append(f"model_connection_edit: skipped, {user.email} has no model connection")
    return pages, skipped


def walk(driver: webdriver.Chrome, base_url: str, user: User, pages: list[tuple[str, str]]) -> Iterator[str]:
    """Open each page in turn in `driver`, a browser new to the site (no cookies: logged out), logging in
    as `user` before the first page not in LOGGED_OUT; yield each page's name once it has loaded and drawn
    its plots. A page that led elsewhere (a redirect to the login page) or is not one of ours (an error
    page) is an error."""
    logged_in = False
    for name, path in pages:
        if name not in LOGGED_OUT and not logged_in:
            log_in(driver, base_url, user)
            logged_in = True
        driver.get(base_url + path)
        landed = urlsplit(driver.current_url).path
        if landed != path:
            raise CommandError(f"{name}: {path} led to {landed}")
        # Every page of the site extends base.html, whose title ends with the site's name; Django's error
        # pages do not.
        if not driver.title.endswith("TradingAI"):
            raise CommandError(f"{name}: {path} shows “{driver.title}”, not a page of the site")
        wait_for_plots(driver, PLOT_TIMEOUT)
        yield name


class QuietRequestHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass  # one line per screenshot says what happened; the requests behind it are noise


@contextmanager
def serving() -> Iterator[str]:
    """The project's WSGI application, static files and all, on 127.0.0.1 at a free port in a background
    thread, as long as the block runs; yields its base URL."""
    # WhiteNoise serves the files collectstatic gathered unless it looks them up with the finders itself
    # (WHITENOISE_USE_FINDERS, which follows DEBUG); and with DEBUG off, the manifest storage names each
    # file by the manifest collectstatic writes. So without DEBUG, collect first.
    if not getattr(settings, "WHITENOISE_USE_FINDERS", settings.DEBUG):
        call_command("collectstatic", interactive=False, verbosity=0)
    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietRequestHandler)
    # A new application, so that WhiteNoise indexes the files collected just now.
    server.set_app(get_wsgi_application())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def widths(value: str) -> list[int]:
    return [int(width) for width in value.split(",")]


class Command(BaseCommand):
    help = (
        "Take a full-page PNG of every main page, logged in as a user (the demo account by default), at each "
        "width, into OUTDIR/<page>-<width>.png. Fails, naming them, when pages are wider than the screen."
    )

    def add_arguments(self, parser):
        parser.add_argument("outdir", type=Path)
        parser.add_argument("--email", default=DEMO_EMAIL, help="whose pages (default: the demo account)")
        parser.add_argument(
            "--widths", type=widths, default=[390, 1280], help="comma-separated CSS pixels (default 390,1280)"
        )

    def handle(self, *args, outdir: Path, email: str, widths: list[int], **options):
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(
                f"there is no user {email}; `python manage.py seed_demo` makes the demo account"
            )
        pages, skipped = main_pages(user)
        for note in skipped:
            self.stdout.write(note)
        outdir.mkdir(parents=True, exist_ok=True)
        too_wide = []
        with serving() as base_url:
            for width in widths:
                driver = chromium(width)
                try:
                    for name in walk(driver, base_url, user, pages):
                        overflow = horizontal_overflow(driver)
                        png = outdir / f"{name}-{width}.png"
                        png.write_bytes(full_page_png(driver))
                        self.stdout.write(f"{name} at {width} px: {png} (overflow {overflow} px)")
                        if overflow:
                            culprits = "; ".join(overflowing_elements(driver))
                            too_wide.append(f"{name} at {width} px by {overflow} px: {culprits}")
                finally:
                    driver.quit()
        if too_wide:
            raise CommandError("pages wider than the screen:\n" + "\n".join(too_wide))
