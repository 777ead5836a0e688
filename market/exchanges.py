"""What the platform knows about markets, and live candles through ccxt.

The only module that imports ccxt (lazily: it takes a second). As in freqtrade, one wrapper owns the ccxt
client and every ccxt exception is translated at one boundary, `ccxt_errors()`, into market.errors:
"try again later" (TemporaryMarketDataError) or "needs a human" (the other MarketDataErrors)."""

import difflib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pandas as pd
from django.conf import settings
from django.utils import timezone

from .costs import remember_exchange_fee
from .errors import (
    ExchangeAuthError,
    MarketDataError,
    OrderNotFoundError,
    OrderRejectedError,
    TemporaryMarketDataError,
    UnknownMarketError,
)
from .importers import Bar
from .models import Candle
from .sources import SAMPLE_EXCHANGE, Market, MarketDataSource, SampleCandles, StoredCandles, frame

if TYPE_CHECKING:
    from accounts.models import ExchangeAccount

# Candles per request when the exchange does not declare its maximum in ccxt's `features`.
DEFAULT_OHLCV_PAGE = 500


@cache
def ccxt_exchange_ids() -> frozenset[str]:
    import ccxt

    return frozenset(ccxt.exchanges)


def is_ccxt_exchange(exchange_id: str) -> bool:
    return exchange_id in ccxt_exchange_ids()


def has_stored_candles(exchange: str, symbol: str | None, timeframe: str | None) -> bool:
    """Whether candles are stored for this market, e.g. the shipped sample market."""
    return Candle.objects.filter(exchange=exchange, symbol=symbol, timeframe=timeframe).exists()


def exchange_choices() -> list[tuple[str, str]]:
    """The exchanges a bot can be set on, for a form's list: those with stored markets (the shipped sample,
    imported candles) first, as they need no connection, then every exchange ccxt can connect to."""
    stored = sorted(set(Candle.objects.values_list("exchange", flat=True).distinct()) - ccxt_exchange_ids())
    return [
        *((name, f"{name} (stored candles, paper trading)") for name in stored),
        *((name, name) for name in sorted(ccxt_exchange_ids())),
    ]


def make_client(
    exchange_id: str,
    *,
    api_origin: str | None = None,
    config: dict[str, Any] | None = None,
    account: "ExchangeAccount | None" = None,
):
    """A ccxt client for public market data: rate limiter on, every call bounded by the setting.

    `api_origin` ("http://127.0.0.1:8123") replaces the scheme and host of every API URL and keeps the
    paths, so the client talks to a stand-in that serves the exchange's real API. `config` overrides the
    defaults, e.g. a shorter timeout in tests. With `account`, the client also signs private calls with the
    account's keys, on the exchange's test network when the account is a sandbox one."""
    if not is_ccxt_exchange(exchange_id):
        raise UnknownMarketError(f"'{exchange_id}' is not an exchange id ccxt knows (e.g. binance, kraken)")
    import ccxt

    client = getattr(ccxt, exchange_id)(
        {
            "enableRateLimit": True,
            "timeout": int(settings.MARKET_DATA_TIMEOUT_SECONDS * 1000),
            **(_signing_config(account) if account else {}),
            **(config or {}),
        }
    )
    if account and account.sandbox:
        # Before the origin is replaced: sandbox mode swaps the test network's URLs in wholesale.
        with ccxt_errors(exchange_id):
            client.set_sandbox_mode(True)
    if api_origin:
        client.urls["api"] = _with_origin(client.urls["api"], api_origin.rstrip("/"))
    return client


def account_client(account: "ExchangeAccount"):
    """A ccxt client that trades with `account`'s keys (see make_client)."""
    return make_client(account.exchange, account=account)


def _signing_config(account: "ExchangeAccount") -> dict[str, Any]:
    credentials = account.credentials()
    return {
        "apiKey": credentials.api_key,
        "secret": credentials.secret,
        "password": credentials.password,
        # With keys, ccxt's binance load_markets() also asks three signed endpoints for the currencies and
        # the margin pairs; spot orders need the markets only.
        "options": {"fetchCurrencies": False, "fetchMargins": False},
    }


@dataclass(frozen=True)
class KeyPermissions:
    """What an exchange says an API key may do."""

    can_withdraw: bool
    ip_restricted: bool
    can_trade: bool


class KeyPermissionsUnknownError(MarketDataError):
    """The exchange does not say what a key may do, or could not be asked; the message says which."""


def key_permissions(account: "ExchangeAccount") -> KeyPermissions:
    """What `account`'s key may do, as the exchange reports it. Binance (and ccxt's exchanges built on it)
    answers GET /sapi/v1/account/apiRestrictions; other exchanges do not tell, which is a
    KeyPermissionsUnknownError, as is any failure to ask. No message holds the key or the secret."""
    try:
        client = make_client(account.exchange, account=account)
        ask = getattr(client, "sapiGetAccountApiRestrictions", None)
        if ask is None:
            raise KeyPermissionsUnknownError(f"{account.exchange} does not report what an API key may do")
        with ccxt_errors(account.exchange, secrets=astuple(account.credentials())):
            answer = ask()
    except KeyPermissionsUnknownError:
        raise
    except MarketDataError as e:
        raise KeyPermissionsUnknownError(f"could not ask {account.exchange}: {e}") from e
    if not isinstance(answer, dict) or not isinstance(answer.get("enableWithdrawals"), bool):
        raise KeyPermissionsUnknownError(f"{account.exchange} answered without the key's permissions")
    return KeyPermissions(
        can_withdraw=answer["enableWithdrawals"],
        ip_restricted=answer.get("ipRestrict") is True,
        can_trade=answer.get("enableSpotAndMarginTrading") is True,
    )


def _with_origin(urls: str | dict, origin: str) -> str | dict:
    # ccxt keeps one URL per API section ("public", "fapiPublic", ...), sometimes as a bare string.
    if isinstance(urls, dict):
        return {section: _with_origin(url, origin) for section, url in urls.items()}
    return origin + urlsplit(urls).path


def _one_line(e: Exception, secrets: Iterable[str] = ()) -> str:
    # ccxt messages carry the response body, which may span lines (an HTML error page).
    text = str(e)
    for secret in filter(None, secrets):
        text = text.replace(secret, "****")  # before the cut, which could leave part of one
    return f"{type(e).__name__}: {' '.join(text.split())[:300]}"


@contextmanager
def ccxt_errors(exchange_id: str, *, secrets: Iterable[str] = ()) -> Iterator[None]:
    """The boundary: ccxt exceptions inside become MarketDataErrors, the ccxt one kept as the cause.

    `secrets`, an account's keys, are masked in the messages: some exchanges take the key in the URL, which
    ccxt quotes in network errors, and an error body may echo it. (The ccxt exception is left as it is.)"""
    import ccxt

    try:
        yield
    # OperationFailed is what ccxt itself retries (maxRetriesOnFailure): NetworkError (timeouts, rate
    # limits, DDoS protection, exchange unavailable) and responses it could not parse.
    except ccxt.OperationFailed as e:
        raise TemporaryMarketDataError(f"{exchange_id}, try again later: {_one_line(e, secrets)}") from e
    except ccxt.BadSymbol as e:
        raise UnknownMarketError(f"{exchange_id} does not know the symbol: {_one_line(e, secrets)}") from e
    # PermissionDenied and AccountSuspended are AuthenticationErrors.
    except ccxt.AuthenticationError as e:
        raise ExchangeAuthError(f"{exchange_id} refused the API keys: {_one_line(e, secrets)}") from e
    # OrderNotFound is an InvalidOrder too (as are the rejections OrderNotFillable and DuplicateOrderId):
    # it goes first.
    except ccxt.OrderNotFound as e:
        raise OrderNotFoundError(f"{exchange_id} has no such order: {_one_line(e, secrets)}") from e
    except (ccxt.InvalidOrder, ccxt.InsufficientFunds) as e:
        raise OrderRejectedError(f"{exchange_id} rejected the order: {_one_line(e, secrets)}") from e
    except ccxt.BaseError as e:
        raise MarketDataError(f"{exchange_id}: {_one_line(e, secrets)}") from e


def taker_fee_pct(client, symbol: str, *, tier: bool = False) -> tuple[Decimal, str]:
    """The taker fee of `symbol` on the client's exchange, in % of a fill, and where it comes from: the
    account's tier when `tier` (the client signs with an account's keys) and ccxt can fetch it
    (`fetch_trading_fees`), else the market's fee as ccxt gives it (`market['taker']`). Loads the markets
    if the client has not; a failure to ask is a MarketDataError."""
    exchange_id = client.id
    with ccxt_errors(exchange_id):
        markets = client.load_markets()
        if symbol not in markets:
            raise UnknownMarketError(f"{exchange_id} has no market '{symbol}'")
        if tier and client.has.get("fetchTradingFees"):
            fees = client.fetch_trading_fees().get(symbol) or {}
            if fees.get("taker") is not None:
                return _pct(fees["taker"]), f"{exchange_id}'s fee for the account"
    taker = markets[symbol].get("taker")
    if taker is None:
        raise MarketDataError(f"{exchange_id} gives no taker fee for {symbol}")
    return _pct(taker), f"{exchange_id}'s fee for the market"


def _pct(fraction: float) -> Decimal:
    # ccxt gives fees as fractions of the fill (0.001); costs are in %.
    return (Decimal(str(fraction)) * 100).normalize()


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _ms_period(market: Market) -> int:
    return int(market.period.total_seconds() * 1000)


class CcxtCandles:
    """Live candles from one exchange through ccxt; a MarketDataSource."""

    def __init__(self, exchange_id: str, *, client=None):
        self.exchange_id = exchange_id
        self.client = client or make_client(exchange_id)
        if not self.client.has.get("fetchOHLCV"):
            raise MarketDataError(f"{exchange_id} does not publish candles (no fetchOHLCV in ccxt)")

    def candles(self, market: Market, *, limit: int, until: datetime | None = None) -> pd.DataFrame:
        """The last `limit` candles that had closed by `until` (now when None); the open one is left out."""
        until = until or timezone.now()
        period_ms = _ms_period(market)
        # Open time of the last candle closed by `until`, then back `limit - 1` periods: history() over
        # that span holds at most `limit` candles.
        last_open_ms = _ms(until) // period_ms * period_ms - period_ms
        since = datetime.fromtimestamp((last_open_ms - (limit - 1) * period_ms) / 1000, tz=UTC)
        return frame(astuple(bar) for bar in self.history(market, since, until))

    def open_at(self, market: Market, moment: datetime) -> float | None:
        return None  # the candle opening now is still forming: an order fills at the last close's price

    def history(self, market: Market, since: datetime, until: datetime | None = None) -> list[Bar]:
        """Every candle opened at or after `since` and closed by `until` (now when None), ascending, each
        once. Asks page after page, each starting just past the last candle received; stops at `until`,
        on an empty page, or when a page brings nothing new."""
        period_ms = _ms_period(market)
        since_ms, until_ms = _ms(since), _ms(until or timezone.now())
        rows: list[list] = []
        with ccxt_errors(self.exchange_id):
            page_size = self._page_size(market)
            while since_ms + period_ms <= until_ms:
                page = self.client.fetch_ohlcv(
                    market.symbol, market.timeframe, since=since_ms, limit=page_size
                )
                fresh = [row for row in page if row[0] >= since_ms]
                if not fresh:
                    break
                rows.extend(row for row in fresh if row[0] + period_ms <= until_ms)
                since_ms = fresh[-1][0] + period_ms
        return [
            Bar(datetime.fromtimestamp(row[0] / 1000, tz=UTC), *(float(value) for value in row[1:6]))
            for row in rows
        ]

    def _page_size(self, market: Market) -> int:
        """Validates the market (loading the exchange's markets on first use) and returns the most
        candles one request may ask for."""
        if market.exchange != self.exchange_id:
            raise MarketDataError(f"this source reads {self.exchange_id}, not {market.exchange}")
        markets = self.client.load_markets()  # ccxt caches them on the client: one request per instance
        if market.symbol not in markets:
            close = difflib.get_close_matches(market.symbol, list(markets), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownMarketError(f"{self.exchange_id} has no market '{market.symbol}'{hint}")
        if markets[market.symbol].get("taker") is not None:
            # What paper trading on this market costs (market.costs), known now without another request.
            remember_exchange_fee(market.exchange, market.symbol, *taker_fee_pct(self.client, market.symbol))
        if market.timeframe not in self.client.timeframes:
            raise MarketDataError(f"{self.exchange_id} does not offer {market.timeframe} candles")
        declared = ((self.client.features or {}).get("spot") or {}).get("fetchOHLCV") or {}
        return declared.get("limit") or DEFAULT_OHLCV_PAGE


def source_for(market: Market) -> MarketDataSource:
    """Where a market's candles come from: the stored ones when any are (imported history; the demo's
    `sample` exchange, whose stored candles go on past their end on the wall clock), else the exchange
    through ccxt."""
    if has_stored_candles(market.exchange, market.symbol, market.timeframe):
        return SampleCandles() if market.exchange == SAMPLE_EXCHANGE else StoredCandles()
    return CcxtCandles(market.exchange)
