"""The dashboard (each bot's figures, the equity curve, recent failures), the insights page with its plots,
and the settings page: what they show after real cycles, and that they show nothing of another user's."""

import html
import json
from datetime import UTC, datetime, timedelta

import pytest

from automation.cycle import Outside, run_cycle
from automation.models import AutomationSession, Bot, CycleRun
from learning.insights import compute_insights
from tests.factories import BotFactory, ExchangeAccountFactory, import_eurusd
from trades.models import Trade

FIRST_SLOT = datetime(2017, 10, 2, 0, tzinfo=UTC)
NO_CHART = Outside(chart=lambda *a: b"\x89PNG not drawn: the technical analyst reads numbers")


@pytest.fixture
def traded_bot(alice, settings):
    """A paper bot after 150 hourly cycles over the EUR/USD candles: resolved analyses and closed trades."""
    settings.LEARNING_MIN_SAMPLES = 20
    import_eurusd()
    bot = BotFactory(
        owner=alice, name="eur", exchange="sample", symbol="EUR/USD", timeframe="1h",
        status=Bot.Status.RUNNING, analyst=Bot.Analyst.TECHNICAL, max_open_trades=3,
    )  # fmt: skip
    AutomationSession.objects.create(bot=bot)
    for i in range(150):
        run_cycle(bot.pk, FIRST_SLOT + i * timedelta(hours=1), NO_CHART)
    assert Trade.objects.filter(bot=bot, status="CLOSED").exists()
    return bot


def figure(page: str, plot_id: str) -> dict:
    """The plot's figure as the page hands it to plotly.js: the JSON of the <script> the plot names."""
    assert f'data-plot="{plot_id}"' in page, f"no plot {plot_id}"
    start = page.index(f'<script id="{plot_id}" type="application/json">') + len(
        f'<script id="{plot_id}" type="application/json">'
    )
    return json.loads(page[start : page.index("</script>", start)])


def test_dashboard_shows_each_bot_the_equity_and_failures(alice_client, alice, traded_bot, charlie):
    CycleRun.objects.create(
        bot=traded_bot, slot=datetime(2018, 1, 1, tzinfo=UTC), status=CycleRun.Status.FAILED,
        failed_step="analysis", error="APITimeoutError: the analyst did not answer in 60 s",
    )  # fmt: skip
    BotFactory(owner=charlie, name="charlie's secret bot")
    closed = Trade.objects.filter(bot=traded_bot, status="CLOSED")

    response = alice_client.get("/")
    page = response.content.decode()
    [row] = response.context["bots"]
    assert row.closed_count == closed.count()
    assert row.wins == closed.filter(outcome="WIN").count()
    assert row.pnl == sum(t.pnl for t in closed)
    assert row.last_slot == datetime(2018, 1, 1, tzinfo=UTC) and row.last_status == "FAILED"
    assert f"{row.pnl:.2f}" in page
    assert f"n={row.closed_count}" in page
    assert "APITimeoutError: the analyst did not answer in 60 s" in page and "analysis" in page
    assert "charlie's secret bot" not in page

    [line] = figure(page, "plot-equity")["data"]
    assert len(line["y"]) == closed.count()
    assert line["y"][-1] == pytest.approx(float(row.pnl), abs=0.01)
    assert "vendor/plotly.min.js" in page


def test_dashboard_empty_state(alice_client):
    page = alice_client.get("/").content.decode()
    assert "Create your first bot" in page and "plotly" not in page


def test_insights_page_plots_what_the_insights_say(alice_client, alice, traded_bot):
    response = alice_client.get("/insights/")
    page = response.content.decode()
    data = compute_insights(alice)
    assert data["resolved"] > 20

    weeks = figure(page, "plot-over-time")["data"][0]
    assert weeks["x"] == [row["week"] for row in data["over_time"] if row["n"]]
    confidence = figure(page, "plot-by-confidence")["data"][0]
    shown = [row for row in data["by_confidence"] if row["n"]]
    assert confidence["text"] == [f"n={row['n']}" for row in shown]
    assert confidence["y"] == [round(row["rate"] * 100, 1) for row in shown]
    # The error bars are the Wilson interval, not a symmetric one.
    assert confidence["error_y"]["arrayminus"][0] == round((shown[0]["rate"] - shown[0]["low"]) * 100, 1)
    for plot_id in ("plot-by-timeframe", "plot-by-sentiment", "plot-by-regime"):
        figure(page, plot_id)
    diagonal, points = figure(page, "plot-calibration")["data"]
    assert diagonal["x"] == [0, 100] and len(points["x"]) == len([r for r in data["calibration"] if r["n"]])
    assert f"n={data['accuracy']['n']}" in page
    for item in data["recommendations"] + data["failures"]:
        assert item["text"] in html.unescape(page)


def test_insights_of_one_bot_and_never_of_another_users(alice_client, alice, traded_bot, charlie):
    other = BotFactory(owner=alice, name="idle")
    idle = alice_client.get("/insights/", {"bot": other.pk})
    assert idle.context["data"]["total_analyses"] == 0 and "No analyses yet" in idle.content.decode()
    assert alice_client.get("/insights/", {"bot": traded_bot.pk}).context["data"]["total_analyses"] == 150
    theirs = BotFactory(owner=charlie)
    refused = alice_client.get("/insights/", {"bot": theirs.pk})
    assert refused.status_code == 200 and refused.context["data"] is None
    assert "Select a valid choice" in refused.content.decode()


def test_insights_empty_state(alice_client):
    page = alice_client.get("/insights/").content.decode()
    assert "No analyses yet" in page and "plotly" not in page


def test_bot_page_shows_each_runs_step_timings(alice_client, traded_bot):
    page = alice_client.get(f"/bots/{traded_bot.pk}/").content.decode()
    run = traded_bot.runs.filter(status="SUCCEEDED").order_by("-slot").first()
    steps = [step for step, _ in run.step_timings()]
    assert steps[:4] == ["prompt", "market_data", "indicators", "chart"]
    assert f"analysis {run.timings['analysis']:.2f}" in page


def test_settings_page_lists_accounts_and_tokens_without_secrets(alice_client, alice, charlie):
    ExchangeAccountFactory(owner=alice, label="main", api_key="AKIAPLAINKEY0000123456")
    ExchangeAccountFactory(owner=charlie, label="charlie's account")
    alice_client.post("/accounts/api-tokens/", {"name": "my script"})
    page = alice_client.get("/accounts/settings/").content.decode()
    assert "main" in page and "••••3456" in page and "my script" in page
    assert "AKIAPLAINKEY0000123456" not in page and "PLAIN-SECRET" not in page
    assert "charlie's account" not in page
    for link in ("/accounts/exchange-accounts/", "/accounts/api-tokens/", "/accounts/password/change/"):
        assert f'href="{link}"' in page


def test_bot_page_pages_its_runs(alice_client, traded_bot):
    first = alice_client.get(f"/bots/{traded_bot.pk}/")
    page = first.context["page"]
    assert (page.paginator.count, len(page.object_list)) == (150, 25)
    assert page.object_list[0].slot == FIRST_SLOT + timedelta(hours=149)  # the latest first
    assert 'href="?page=2"' in first.content.decode()
    assert (
        alice_client.get(f"/bots/{traded_bot.pk}/", {"page": 6}).context["page"].object_list[24].slot
        == FIRST_SLOT
    )
