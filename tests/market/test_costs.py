"""Costs per market (issue 18): recorded with a stored market by import_candles and in the admin, ccxt's fee
for a market and an account's tier read from the exchange stand-in, and defaults by asset class."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from market import exchanges
from market.costs import DEFAULTS, asset_class_of, costs_of
from market.exchanges import account_client, taker_fee_pct
from market.models import StoredMarket
from tests.factories import ExchangeAccountFactory, UserFactory, force_login_verified
from tests.stand_ins.exchange_server import TRADE_FEE

D = Decimal
CSV = (
    "time,open,high,low,close,volume\n"
    "2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n"
    "2024-01-01T01:00:00Z,1.5,2,1,1.8,10\n"
)


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "candles.csv"
    path.write_text(CSV)
    return path


def imported(csv, *flags: str, exchange="csvdata", symbol="ACME") -> str:
    out = StringIO()
    call_command(
        "import_candles", str(csv), "--exchange", exchange, "--symbol", symbol, "--timeframe", "1h", *flags,
        stdout=out,
    )  # fmt: skip
    return out.getvalue()


@pytest.mark.parametrize(
    ("exchange", "symbol", "expected"),
    [
        ("sample", "EUR/USD", "fx"),
        ("csvdata", "USD/JPY", "fx"),
        ("binance", "BTC/USDT", "crypto"),
        ("csvdata", "ETH/EUR", "crypto"),  # a coin on either side
        ("kraken", "FOO/BAR", "crypto"),  # a ccxt exchange trades crypto
        ("sample", "STRONG1/USD", ""),  # the learning benchmark's markets: not known
        ("csvdata", "ACME", ""),
    ],
)
def test_the_asset_class_is_read_from_the_names(exchange, symbol, expected):
    assert asset_class_of(exchange, symbol) == expected


def test_defaults_by_asset_class_and_the_global_default_for_a_market_of_no_known_class(db, settings):
    settings.SIMULATION_FEE_PCT, settings.SIMULATION_SLIPPAGE_PCT = D("0.2"), D("0.03")
    fx = costs_of("sample", "EUR/USD")
    assert (fx.fee_pct, fx.spread_pct, fx.slippage_pct) == (D(0), D("0.008"), D("0.004"))
    assert fx.basis == "fx default"
    crypto = costs_of("binance", "BTC/USDT")
    assert (crypto.fee_pct, crypto.spread_pct) == DEFAULTS["crypto"] == (D("0.10"), D("0.10"))
    StoredMarket.objects.create(exchange="csvdata", symbol="ACME", asset_class="stock")
    stock = costs_of("csvdata", "ACME")
    assert (stock.fee_pct, stock.spread_pct) == (D("0.005"), D("0.02"))
    unknown = costs_of("sample", "STRONG1/USD")
    assert (unknown.fee_pct, unknown.slippage_pct, unknown.basis) == (D("0.2"), D("0.03"), "global default")


def test_import_candles_records_the_costs_with_the_market_and_the_admin_shows_them(db, csv, client):
    said = imported(csv, "--fee-pct", "0.02", "--spread", "0.05", "--asset-class", "stock")
    assert "costs recorded: fee 0.02 %, spread 0.05 %, asset class stock" in said
    market = StoredMarket.objects.get(exchange="csvdata", symbol="ACME")
    assert (market.fee_pct, market.spread_pct, market.asset_class) == (D("0.02"), D("0.05"), "stock")
    recorded = costs_of("csvdata", "ACME")
    assert (recorded.fee_pct, recorded.slippage_pct, recorded.basis) == (
        D("0.02"),
        D("0.025"),
        "recorded with the market",
    )
    # A figure given alone later replaces that one and keeps the other.
    imported(csv, "--spread", "0.01")
    market.refresh_from_db()
    assert (market.fee_pct, market.spread_pct) == (D("0.02"), D("0.01"))

    force_login_verified(client, UserFactory(email="ops@example.com", is_staff=True, is_superuser=True))
    listed = client.get(reverse("admin:market_storedmarket_changelist")).content.decode()
    assert "ACME" in listed and "0.02000" in listed and "0.01000" in listed
    page = client.get(reverse("admin:market_storedmarket_change", args=[market.pk])).content.decode()
    assert 'name="fee_pct"' in page and 'name="spread_pct"' in page and 'name="asset_class"' in page


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--fee-pct", "-0.1"), "--fee-pct cannot be negative (-0.1 %)"),
        (("--spread", "12"), "--spread of 12 % is absurd: at most 10 %"),
        (("--spread", "0.1%"), "--spread must be a number in %, not '0.1%'"),
        (("--fee-pct", "nan"), "--fee-pct must be a number"),
    ],
)
def test_bad_costs_are_refused_before_anything_is_stored(db, csv, flags, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        imported(csv, *flags)
    assert not StoredMarket.objects.exists()


def test_the_admin_refuses_an_absurd_fee(db, client):
    market = StoredMarket.objects.create(exchange="csvdata", symbol="ACME")
    force_login_verified(client, UserFactory(email="ops@example.com", is_staff=True, is_superuser=True))
    url = reverse("admin:market_storedmarket_change", args=[market.pk])
    absurd = {"exchange": "csvdata", "symbol": "ACME", "fee_pct": "25", "spread_pct": "-1"}
    response = client.post(url, absurd)
    assert response.status_code == 200  # the form again, with its errors
    assert "less than or equal to 10" in response.content.decode()
    assert "greater than or equal to 0" in response.content.decode()
    market.refresh_from_db()
    assert market.fee_pct is None


def test_ccxt_gives_the_markets_taker_fee_and_the_account_its_tier(db, exchange_stand_in):
    # exchanges.make_client, which the stand-in's fixture points at 127.0.0.1.
    published = taker_fee_pct(exchanges.make_client("binance"), "BTC/USDT")
    assert published == (D("0.1"), "binance's fee for the market")
    exchange_stand_in.taker_fee = D("0.00075")  # a VIP tier
    account = ExchangeAccountFactory(owner=UserFactory(), exchange="binance")
    fee, basis = taker_fee_pct(account_client(account), "BTC/USDT", tier=True)
    assert (fee, basis) == (D("0.075"), "binance's fee for the account")
    assert exchange_stand_in.requests_to(TRADE_FEE)
    # Read for a live bot's calls: the account's tier, the market's fee for anyone else.
    assert costs_of("binance", "BTC/USDT", account=account).fee_pct == D("0.075")
    assert costs_of("binance", "BTC/USDT").fee_pct == D("0.10")


def test_the_fee_ccxt_gave_with_the_markets_is_the_markets_cost(db, binance):
    binance.candles(binance_market(), limit=3)
    told = costs_of("binance", "BTC/USDT")
    assert (told.fee_pct, told.basis) == (D("0.1"), "binance's fee for the market")


def test_an_account_whose_tier_cannot_be_read_pays_the_markets_fee(db, exchange_stand_in, caplog):
    exchange_stand_in.fail_next(TRADE_FEE, 500, {"code": -1000, "msg": "An unknown error occurred."})
    account = ExchangeAccountFactory(owner=UserFactory(), exchange="binance")
    assert costs_of("binance", "BTC/USDT", account=account).fee_pct == D("0.10")
    assert "the fee of BTC/USDT on binance" in caplog.text


def binance_market():
    from market.sources import Market

    return Market("binance", "BTC/USDT", "1h")
