"""Start `make run` as a user would, use the product over HTTP, then stop it with Ctrl-C (SIGINT).

Checks: the web server answers; a new user signs up (following the link of the sign-up mail, which the
local default prints in the web log), logs in and creates a simulation bot that the dashboard lists; the
workers and beat report connected and /healthz answers 200; SIGINT stops web, worker and beat."""

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

PORT = os.environ.get("SMOKE_PORT", "8765")
BASE = f"http://127.0.0.1:{PORT}"
ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    var_dir = tempfile.mkdtemp(prefix="tradingai-smoke-")
    env = {
        **os.environ,
        "TRADINGAI_PORT": PORT,
        "TRADINGAI_VAR_DIR": var_dir,
        "TRADINGAI_HEARTBEAT_SECONDS": "2",
    }
    for key in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(key, None)
    log_path = Path(var_dir) / "make-run.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait(lambda: http_ok(f"{BASE}/accounts/login/"), 240, "the web server to answer", log_path)
        use_the_product(log_path)
        wait(
            lambda: all(
                re.search(rf"{name}@\S+ ready\.", log_path.read_text()) for name in ("default", "io")
            ),
            60,
            "both workers (default and io queues) to connect",
            log_path,
        )
        # Beat's heartbeat on each queue taken by that queue's worker, beat's tick, the broker, the database.
        wait(lambda: http_ok(f"{BASE}/healthz"), 60, "/healthz to answer 200", log_path)
        print(
            "demo login line:",
            next(line for line in log_path.read_text().splitlines() if "Demo login" in line),
        )
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends to the foreground group
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            print(log_path.read_text())
            raise SystemExit("make run did not stop on Ctrl-C") from None
    time.sleep(1)
    pattern = f"runserver 127.0.0.1:{PORT}|celery -A tradingai (worker|beat)"
    leftovers = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    if leftovers:
        raise SystemExit(f"processes left after Ctrl-C: {leftovers}")
    print("make run: up, used, stopped cleanly")
    return 0


def http_ok(url):
    try:
        return urllib.request.urlopen(url, timeout=5).status == 200
    except OSError:
        return False


def wait(predicate, seconds, what, log_path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    print(log_path.read_text())
    raise SystemExit(f"timed out waiting for {what}")


BOT_FORM = {
    "timeframe": "4h",
    "mode": "SIMULATION",
    "analyst": "TECHNICAL",
    "chart_source": "RENDERED",
    "starting_balance": "5000",
    "risk_per_trade_pct": "1",
    "max_position_pct": "25",
    "max_open_trades": "1",
    "daily_loss_limit_pct": "5",
    "min_confidence": "70",
}


def use_the_product(log_path):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def post(path, data, form_page=None):
        opener.open(f"{BASE}{form_page or path}").read()  # sets the CSRF cookie
        token = next(c.value for c in jar if c.name == "csrftoken")
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(f"{BASE}{path}", data=body, headers={"Referer": f"{BASE}{path}"})
        return opener.open(request)

    email = f"smoke{int(time.time())}@example.com"
    response = post(
        "/accounts/signup/",
        {"email": email, "password1": "smoke test pass 123", "password2": "smoke test pass 123"},
    )
    assert "check your" in response.read().decode().lower(), "sign-up did not say to check the e-mail"
    link = None
    deadline = time.monotonic() + 30
    while link is None and time.monotonic() < deadline:
        found = re.search(rf"{re.escape(BASE)}(/accounts/signup/confirm/[^/\s]+/)", log_path.read_text())
        link = found and found.group(1)
        time.sleep(0.5)
    assert link, "no sign-up link in the web log (console e-mail)"
    response = post(link, {})
    assert response.url.rstrip("/") == BASE, f"sign-up did not land on the dashboard: {response.url}"
    post("/accounts/logout/", {}, form_page="/")
    response = post("/accounts/login/", {"username": email, "password": "smoke test pass 123"})
    assert response.url.rstrip("/") == BASE, f"login did not land on the dashboard: {response.url}"
    response = post(
        "/bots/new/", {**BOT_FORM, "name": "Smoke bot", "exchange": "binance", "symbol": "ETH/USDT"}
    )
    assert re.search(r"/bots/\d+/$", response.url), f"bot form did not save: {response.url}"
    dashboard = opener.open(f"{BASE}/").read().decode()
    assert "Smoke bot" in dashboard and "ETH/USDT" in dashboard, "the new bot is not on the dashboard"
    css = opener.open(f"{BASE}/static/css/app.css")
    assert css.status == 200, "static files are not served"
    print(f"signed up {email}, logged in, created a bot, saw it on the dashboard")

    # A paper bot on the shipped sample market: start it, run now, and the worker runs its cycle.
    paper = {"name": "Smoke paper", "exchange": "sample", "symbol": "EUR/USD", "timeframe": "1h"}
    response = post("/bots/new/", {**BOT_FORM, **paper})
    bot_page = response.url
    start = post(f"{bot_page.removeprefix(BASE)}start/", {}, form_page=bot_page.removeprefix(BASE))
    assert "is running" in start.read().decode(), "the bot did not start"
    ran = post(f"{bot_page.removeprefix(BASE)}run-now/", {}, form_page=bot_page.removeprefix(BASE))
    assert "is on its way" in ran.read().decode(), "run-now was refused"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        page = opener.open(bot_page).read().decode()
        # The status cell, not the words: "Failed step" is a column header.
        if "<td>Succeeded</td>" in page or "<td>Failed</td>" in page:
            break
        time.sleep(2)
    runs = page[page.find("<h2>Runs") :][:2000]
    assert "<td>Succeeded</td>" in page, f"the cycle did not succeed on the worker: {runs}"
    chart_path = re.search(r'href="(/analyses/\d+/chart\.png)"', page)
    assert chart_path, "the run's analysis has no chart link"
    assert opener.open(f"{BASE}{chart_path.group(1)}").read().startswith(b"\x89PNG"), (
        "the chart is not served"
    )
    print(
        "started a paper bot, ran it now: the worker ran its cycle; the bot page shows the run and its chart"
    )


if __name__ == "__main__":
    sys.exit(main())
