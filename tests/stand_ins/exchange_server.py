"""A stand-in for Binance's public spot REST API, served over real HTTP on 127.0.0.1, so that tests run the
real ccxt client end to end. It answers what ccxt 4.5's binance.py asks for in load_markets() and
fetch_ohlcv(), with the JSON shapes that binance.py parses:

    GET /api/v3/exchangeInfo   spot markets: BTC/USDT, ETH/USDT, ETH/BTC
    GET /fapi/v1/exchangeInfo  USDT-margined futures: none listed (ccxt loads them by default)
    GET /dapi/v1/exchangeInfo  coin-margined futures: none listed
    GET /api/v3/klines         candles: symbol, interval, startTime, endTime, limit (default 500, max 1000)

Candles exist from LISTED up to the one open now, each a fixed function of its market, interval and open
time, so every test sees the same prices. Failures are scripted per path (`fail_next`, `stall_next`) and
every request received is recorded (`requests`, `requests_to`)."""

import json
import math
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

EXCHANGE_INFO = "/api/v3/exchangeInfo"
KLINES = "/api/v3/klines"
LISTED = datetime(2025, 1, 1, tzinfo=UTC)
LISTED_MS = int(LISTED.timestamp() * 1000)
INTERVALS_MS = {"15m": 900_000, "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}
DEFAULT_LIMIT, MAX_LIMIT = 500, 1000

# Error bodies as Binance sends them.
INVALID_SYMBOL = {"code": -1121, "msg": "Invalid symbol."}
INVALID_INTERVAL = {"code": -1120, "msg": "Invalid interval."}
RATE_LIMITED = {
    "code": -1003,
    "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API.",
}
# What the CDN in front of the API returns while the API is down: HTML, not JSON.
UNAVAILABLE = "<html><head><title>503 Service Temporarily Unavailable</title></head>\n<body>503</body></html>"


@dataclass(frozen=True)
class Listing:
    id: str
    base: str
    quote: str
    level: float  # the price its candles move around


LISTINGS = (
    Listing("BTCUSDT", "BTC", "USDT", 60_000.0),
    Listing("ETHUSDT", "ETH", "USDT", 3_000.0),
    Listing("ETHBTC", "ETH", "BTC", 0.05),
)


@dataclass(frozen=True)
class Received:
    path: str
    params: dict[str, str]


@dataclass(frozen=True)
class _Script:
    status: int | None = None
    body: object = None
    delay: float = 0.0


def _close(listing: Listing, index: int) -> float:
    # Two slow waves: a trend to follow and noise on top, the same on every run.
    return listing.level * (1 + 0.1 * math.sin(index / 50) + 0.02 * math.sin(index / 7))


def kline(listing: Listing, open_ms: int, period_ms: int) -> list:
    """One candle in Binance's layout: open time, OHLCV as strings, close time, then extras ccxt ignores."""
    index = (open_ms - LISTED_MS) // period_ms
    close = _close(listing, index)
    open_ = _close(listing, index - 1) if index else listing.level
    volume = 10 + (index * 7919 % 100) / 10
    prices = [open_, max(open_, close) * 1.004, min(open_, close) * 0.996, close]
    return [
        open_ms,
        *(f"{price:.8f}" for price in prices),
        f"{volume:.8f}",
        open_ms + period_ms - 1,
        f"{volume * close:.8f}",
        100 + index % 50,
        f"{volume / 2:.8f}",
        f"{volume * close / 2:.8f}",
        "0",
    ]


def _symbol_info(listing: Listing) -> dict:
    return {
        "symbol": listing.id,
        "status": "TRADING",
        "baseAsset": listing.base,
        "baseAssetPrecision": 8,
        "quoteAsset": listing.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.000001",
                "maxPrice": "1000000",
                "tickSize": "0.000001",
            },
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "maxNotional": "9000000.00000000"},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
    }


class ExchangeStandIn:
    """Binance on 127.0.0.1 and a free port; use as a context manager, or start() and close()."""

    def __init__(self):
        self.requests: list[Received] = []
        self.listed = {listing.id: listing for listing in LISTINGS}
        self._scripts: dict[str, deque[_Script]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.stand_in = self
        # A short poll interval so that close() returns at once rather than after serve_forever's 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "ExchangeStandIn":
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # ends any stalled response at once
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "ExchangeStandIn":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def fail_next(self, path: str, status: int, body: object) -> None:
        """The next request to `path` gets this status and body (JSON unless a str)."""
        with self._lock:
            self._scripts[path].append(_Script(status=status, body=body))

    def stall_next(self, path: str, seconds: float) -> None:
        """The next request to `path` is answered normally, but only after `seconds`."""
        with self._lock:
            self._scripts[path].append(_Script(delay=seconds))

    def delist(self, market_id: str) -> None:
        """The market disappears, as when an exchange delists a pair clients have already loaded."""
        del self.listed[market_id]

    def requests_to(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]

    def respond(self, path: str, params: dict[str, str]) -> tuple[int, object]:
        with self._lock:
            self.requests.append(Received(path, params))
            script = self._scripts[path].popleft() if self._scripts[path] else _Script()
        if script.delay:
            self._closing.wait(script.delay)
        if script.status is not None:
            return script.status, script.body
        if path == EXCHANGE_INFO:
            return 200, self._exchange_info([_symbol_info(listing) for listing in self.listed.values()])
        if path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
            return 200, self._exchange_info([])
        if path == KLINES:
            return self._klines(params)
        return 404, "<html><body><h1>404 Not Found</h1></body></html>"

    def _exchange_info(self, symbols: list[dict]) -> dict:
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _klines(self, params: dict[str, str]) -> tuple[int, object]:
        listing = self.listed.get(params.get("symbol", ""))
        if listing is None:
            return 400, INVALID_SYMBOL
        period = INTERVALS_MS.get(params.get("interval", ""))
        if period is None:
            return 400, INVALID_INTERVAL
        limit = min(int(params.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
        # The last candle served is the one still open now, or the last opened by endTime.
        last = int(time.time() * 1000) // period * period
        if "endTime" in params:
            last = min(last, int(params["endTime"]) // period * period)
        if "startTime" in params:
            # The first `limit` candles opened at or after startTime.
            first = max(LISTED_MS, -(-int(params["startTime"]) // period) * period)
            opens = range(first, last + 1, period)[:limit]
        else:
            # Without startTime, the most recent `limit`.
            opens = range(max(LISTED_MS, last - (limit - 1) * period), last + 1, period)
        return 200, [kline(listing, open_ms, period) for open_ms in opens]


class _Handler(BaseHTTPRequestHandler):
    server_version = "stand-in"

    def do_GET(self):
        url = urlsplit(self.path)
        status, body = self.server.stand_in.respond(url.path, dict(parse_qsl(url.query)))
        if isinstance(body, str):
            payload, content_type = body.encode(), "text/html"
        else:
            payload, content_type = json.dumps(body).encode(), "application/json;charset=UTF-8"
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except ConnectionError:
            pass  # the client stopped waiting: the timeout scenario

    def log_message(self, format, *args):
        pass  # requests are recorded in ExchangeStandIn.requests instead of printed
