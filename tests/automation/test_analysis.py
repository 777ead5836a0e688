import base64
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from matplotlib import pyplot as plt
from PIL import Image

from automation.analysis import Candles, analyse_market
from automation.analysts.base import AnalystResult
from automation.analysts.consistency import enforce_consistent_levels
from automation.analysts.schema import Analysis
from automation.analysts.service import analyse, get_analyst
from automation.analysts.technical import TechnicalAnalyst, analyse_indicators
from automation.charts import rendered
from automation.charts.rendered import render_chart
from automation.charts.storage import private_chart_name, rendered_chart_name
from learning.models import AILearningData
from market.indicators import compute
from market.sources import Market, StoredCandles
from tests.factories import EURUSD_CSV, import_eurusd
from tests.market.test_indicators import bars
from trades.outcomes import Bars

ANALYZE_EURUSD = [
    "--exchange", "sample", "--symbol", "EUR/USD", "--timeframe", "1h", "--at", "2018-01-15T12:00:00Z"
]  # fmt: skip
SPEC_FIELDS = {
    "summary", "market_sentiment", "key_levels", "recommendation", "confidence", "reasoning", "entry",
    "stop_loss", "take_profit", "predicted_price", "horizon",
}  # fmt: skip


@pytest.fixture
def eurusd(db):
    import_eurusd()
    return Market("sample", "EUR/USD", "1h")


def analysis(**overrides) -> Analysis:
    fields = {
        "summary": "s", "market_sentiment": "BULLISH", "key_levels": {"support": [9.0], "resistance": [12.0]},
        "recommendation": "BUY", "confidence": 70, "reasoning": "r", "entry": 10.0, "stop_loss": 9.5,
        "take_profit": 11.0, "predicted_price": 11.0, "horizon": 10,
    }  # fmt: skip
    return Analysis(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"stop_loss": 10.5}, "BUY with stop-loss 10.5 not below entry 10.0"),
        ({"take_profit": 9.8}, "BUY with take-profit 9.8 not above entry 10.0"),
        ({"recommendation": "SELL"}, "SELL with stop-loss 9.5 not above entry 10.0"),
        ({"recommendation": "SELL", "stop_loss": 10.5}, "SELL with take-profit 11.0 not below entry 10.0"),
        ({"entry": None}, "BUY without entry, stop-loss and take-profit"),
    ],
)
def test_contradicting_levels_turn_a_trade_into_hold_with_the_reason(overrides, reason):
    checked, problem = enforce_consistent_levels(analysis(**overrides))
    assert (checked.recommendation, problem) == ("HOLD", reason)


def test_consistent_levels_are_left_alone():
    original = analysis()
    assert enforce_consistent_levels(original) == (original, None)
    sell = analysis(recommendation="SELL", stop_loss=10.5, take_profit=9.0)
    assert enforce_consistent_levels(sell) == (sell, None)


def test_the_service_records_why_an_analysis_was_not_tradable():
    class Contradicting:
        name = "fake"

        def analyse(self, request):
            return AnalystResult(analysis=analysis(stop_loss=10.5), analyst="fake")

    result = analyse(Contradicting(), request=None)
    assert result.analysis.recommendation == "HOLD"
    assert result.notes == {
        "original_recommendation": "BUY",
        "level_problem": "BUY with stop-loss 10.5 not below entry 10.0",
    }


def test_schema_rejects_out_of_range_values():
    with pytest.raises(ValueError, match="confidence"):
        analysis(confidence=150)
    with pytest.raises(ValueError, match="horizon"):
        analysis(horizon=0)
    with pytest.raises(ValueError, match="positive"):
        analysis(stop_loss=-1)


def test_technical_analyst_buys_a_clean_uptrend_and_sells_a_downtrend():
    rng = np.random.default_rng(3)
    up = np.cumsum(0.1 + rng.normal(0, 0.5, 300)) + 200
    buy = analyse_indicators(compute(bars(up)))
    sell = analyse_indicators(compute(bars(400 - up)))
    assert (buy.recommendation, buy.market_sentiment) == ("BUY", "BULLISH")
    assert buy.stop_loss < buy.entry < buy.take_profit
    assert (sell.recommendation, sell.market_sentiment) == ("SELL", "BEARISH")
    assert sell.take_profit < sell.entry < sell.stop_loss
    assert enforce_consistent_levels(buy)[1] is None and enforce_consistent_levels(sell)[1] is None
    assert 50 < buy.confidence <= 95


def test_technical_analysis_is_deterministic_on_real_candles(eurusd):
    source = StoredCandles()
    until = datetime(2017, 11, 1, tzinfo=UTC)
    runs = [
        analyse_market(
            eurusd, source=source, analyst=TechnicalAnalyst(), until=until, chart=lambda *a: b"png"
        )
        for _ in range(2)
    ]
    assert runs[0].result.analysis == runs[1].result.analysis
    assert runs[0].candles.frame.index[-1] < until  # nothing after the moment asked for
    assert set(runs[0].timings) == {"market_data", "indicators", "chart", "chart_store", "analysis"}


def test_get_analyst_defaults_to_technical_without_a_key(settings):
    settings.OPENAI_API_KEY = ""
    assert get_analyst().name == "technical"


def test_rendered_chart_is_a_1280_by_720_png(eurusd):
    df = StoredCandles().candles(eurusd, limit=300)
    png = render_chart(df, eurusd, compute(df))
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.size) == ("PNG", (1280, 720))
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50  # candles, lines and text were drawn


def test_the_charts_png_holds_the_canvas_pixels_as_rgb():
    # rendered.png_rgb writes the PNG itself: any pixel, of any channel, must read back as it was.
    rgba = np.random.default_rng(7).integers(0, 256, size=(37, 53, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    image = Image.open(io.BytesIO(rendered.png_rgb(rgba)))
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (53, 37))
    assert np.array_equal(np.asarray(image), rgba[..., :3])


def test_a_chart_drawn_on_the_kept_figure_is_the_chart_a_new_figure_draws(eurusd):
    # The figure is kept between charts (rendered._canvas): nothing of one chart may show on the next.
    df = StoredCandles().candles(eurusd, limit=300)
    other_df = StoredCandles().candles(eurusd, limit=300, until=df.index[0].to_pydatetime())
    kraken = Market("kraken", "SOL/USD", "4h")
    rendered._canvas.cache_clear()
    first = render_chart(df, eurusd, compute(df))
    other = render_chart(other_df, kraken, compute(other_df))
    plt.close("all")  # by any other code of the process: the kept figure is not pyplot's
    again = render_chart(df, eurusd, compute(df))
    assert again == first
    assert other != first


def test_chart_names_carry_everything_that_decides_the_picture():
    at = datetime(2025, 7, 18, 14, 30, tzinfo=UTC)
    rendered = rendered_chart_name(Market("kraken", "SOL/USD", "1h"), at)
    assert re.fullmatch(r"charts/rendered/kraken/SOLUSD_1h_20250718_143000_[0-9a-f]{12}\.png", rendered)
    # Markets that read alike once reduced to letters and digits, or differ by exchange, never share a name.
    others = [
        Market("kraken", "SOLUSD", "1h"),
        Market("binance", "SOL/USD", "1h"),
        Market("kraken", "SOL/USD", "4h"),
    ]
    assert len({rendered, *(rendered_chart_name(market, at) for market in others)}) == 4
    # A bot's own chart is under its name, apart from every rendered chart.
    assert private_chart_name("bot7", Market("kraken", "SOL/USD", "1h"), at) == (
        "charts/bots/bot7/SOLUSD_1h_20250718_143000.png"
    )


def test_import_then_analyze_json_on_the_eurusd_csv(db, tmp_path):
    out = io.StringIO()
    call_command(
        "import_candles", str(EURUSD_CSV), exchange="sample", symbol="EUR/USD", timeframe="1h", stdout=out
    )
    assert "Stored 5000 candles" in out.getvalue()
    out = io.StringIO()
    call_command("analyze", *ANALYZE_EURUSD, "--analyst", "technical", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert set(data) == SPEC_FIELDS | {"chart"}
    assert data["recommendation"] in {"BUY", "SELL", "HOLD"}
    assert re.fullmatch(r"EURUSD_1h_20180115_120000_[0-9a-f]{12}\.png", Path(data["chart"]).name)
    assert Image.open(data["chart"]).size == (1280, 720)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "yesterday"], "not an ISO time"),
        (["--at", "2017-04-20T00:00:00Z"], "NotEnoughCandlesError"),
    ],
)
def test_analyze_reports_bad_input_clearly(eurusd, args, message):
    base = ["--exchange", "sample", "--symbol", "EUR/USD", "--timeframe", "1h", "--analyst", "technical"]
    with pytest.raises(CommandError, match=message):
        call_command("analyze", *base, *args)


def test_analyze_on_an_exchange_no_one_knows_is_a_clear_error(db):
    args = ["--exchange", "nosuch", "--symbol", "EUR/USD", "--timeframe", "1h", "--analyst", "technical"]
    with pytest.raises(CommandError, match="UnknownMarketError: 'nosuch' is not an exchange id ccxt knows"):
        call_command("analyze", *args)


def test_the_chart_is_served_to_its_owner_only(client, alice, charlie):
    record = AILearningData.objects.create(user=alice, analysis_data={}, symbol="EUR/USD", timeframe="1h")
    record.screenshot.save("EURUSD_1h_20180115_120000.png", ContentFile(b"\x89PNG\r\n\x1a\nfake"))
    url = reverse("analysis_chart", args=[record.pk])

    assert client.get(url).status_code == 302  # anonymous: to the login page
    client.force_login(charlie)
    assert client.get(url).status_code == 404
    client.force_login(alice)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")


def test_analyze_with_the_openai_analyst_over_real_http(eurusd, openai_stand_in, settings):
    settings.OPENAI_API_KEY = "sk-test-local"
    settings.OPENAI_BASE_URL = openai_stand_in.base_url
    settings.OPENAI_MAX_RETRIES = 0
    answer = analysis(entry=1.1800, stop_loss=1.1750, take_profit=1.1900, predicted_price=1.1890).model_dump()
    openai_stand_in.add_content(json.dumps(answer), prompt_tokens=900, completion_tokens=150)

    out = io.StringIO()
    call_command("analyze", *ANALYZE_EURUSD, "--analyst", "openai", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert {k: data[k] for k in answer} == answer

    [sent] = openai_stand_in.requests
    assert sent.body["response_format"]["type"] == "json_schema"
    assert sent.body["response_format"]["json_schema"]["strict"] is True
    text, image = sent.body["messages"][1]["content"]
    assert "EUR/USD on sample, 1h candles" in text["text"]
    png = base64.b64decode(image["image_url"]["url"].split(",", 1)[1])
    assert png == Path(data["chart"]).read_bytes()  # the chart sent is the chart stored
    assert Image.open(io.BytesIO(png)).size == (1280, 720)


def test_analyze_reports_an_openai_failure_as_a_command_error(eurusd, openai_stand_in, settings):
    settings.OPENAI_API_KEY = "sk-test-local"
    settings.OPENAI_BASE_URL = openai_stand_in.base_url
    settings.OPENAI_MAX_RETRIES = 0
    openai_stand_in.add_refusal("I can't help with that.")
    args = ["--exchange", "sample", "--symbol", "EUR/USD", "--timeframe", "1h", "--analyst", "openai"]
    with pytest.raises(CommandError, match="AnalystRefusedError: the model refused"):
        call_command("analyze", *args)


def test_candles_make_their_frame_and_bars_once_and_only_when_asked(eurusd):
    frame = StoredCandles().candles(eurusd, limit=300)
    made = []

    def make():
        made.append(1)
        return frame

    cut = Candles(bars=Bars(frame), make_frame=make)
    assert len(cut) == 300 and made == []  # the bars are enough for what a replay's cycle reads
    assert cut.frame is frame and cut.frame is frame and made == [1]
    whole = Candles(frame)
    assert len(whole) == 300 and vars(whole.bars) == vars(Bars(frame)) and whole.bars is whole.bars
    with pytest.raises(ValueError, match="a way to make their frame"):
        Candles(bars=Bars(frame))
