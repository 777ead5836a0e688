"""The price chart in a real browser: a paper bot's cycles over the shipped EUR/USD hours open a trade, and
the bot page's and the trade page's Plotly charts carry that trade's entry, stop-loss and take-profit (read
from the figure Plotly drew, in the page), drawn under the Content-Security-Policy."""

from datetime import UTC, datetime, timedelta

from automation.browser import chromium, csp_violations, log_in, wait_for_plots
from automation.cycle import run_cycle
from automation.models import AutomationSession, Bot
from automation.price_chart import BEFORE_ENTRY
from tests.factories import BotFactory, import_eurusd
from trades.models import Trade

FIRST_SLOT = datetime(2017, 10, 2, 0, tzinfo=UTC)  # a Monday of the shipped EUR/USD hours
MAX_CYCLES = 150

# The traces of the chart Plotly drew (its graph div keeps the figure as `data`), by name.
DRAWN = """
const box = document.querySelector('[data-price-chart][data-rendered]');
const traces = {};
for (const trace of box.data || []) {
  traces[trace.name] = {x: trace.x, y: trace.y, customdata: trace.customdata || null, type: trace.type};
}
return {traces: traces, markers: box.querySelectorAll('.scatterlayer .point').length};
"""


def test_the_bot_and_trade_pages_chart_the_trade_a_cycle_opened(live_server, transactional_db, alice):
    import_eurusd()
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING,
        max_open_trades=3,
    )  # fmt: skip
    AutomationSession.objects.create(bot=bot)
    for i in range(MAX_CYCLES):
        run_cycle(bot.pk, FIRST_SLOT + i * timedelta(hours=1))
        if Trade.objects.filter(bot=bot).exists():
            break
    trade = Trade.objects.get(bot=bot)  # the first cycle that traded opened one

    driver = chromium(1280)
    try:
        log_in(driver, live_server.url, alice)
        for page in (f"/bots/{bot.pk}/", f"/trades/{trade.pk}/"):
            driver.get(live_server.url + page)
            wait_for_plots(driver, timeout=60)
            drawn = driver.execute_script(DRAWN)
            traces = drawn["traces"]
            assert traces["EUR/USD"]["type"] == "candlestick", page
            assert len(traces["EUR/USD"]["x"]) > BEFORE_ENTRY, page
            entries = traces["Entries"]
            assert trade.pk in entries["customdata"], page
            at = entries["customdata"].index(trade.pk)
            assert datetime.fromisoformat(entries["x"][at]) == trade.execution_time
            assert entries["y"][at] == float(trade.price)
            assert float(trade.stop_loss) in traces["Stop-losses"]["y"], page
            assert float(trade.take_profit) in traces["Take-profits"]["y"], page
            assert bot.analyses.get(trade=trade).pk in traces["Analyses"]["customdata"], page
            assert drawn["markers"] >= 2, f"{page}: no markers drawn"  # the entry and the calls at least
            assert not csp_violations(driver), page
    finally:
        driver.quit()
