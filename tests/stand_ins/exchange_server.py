"""A stand-in for Binance's spot REST API, served over real HTTP on 127.0.0.1, so that tests run the real
ccxt client end to end. It answers what ccxt 4.5's binance.py asks for in load_markets(), fetch_ohlcv(),
create_order() (market orders), fetch_order(), fetch_order_trades() and the implicit OCO endpoints
(private_post_orderlist_oco, private_get_orderlist, private_delete_orderlist), with the JSON shapes that
binance.py parses:

    GET  /api/v3/exchangeInfo   spot markets: BTC/USDT, ETH/USDT, ETH/BTC
    GET  /fapi/v1/exchangeInfo  USDT-margined futures: none listed (ccxt loads them by default)
    GET  /dapi/v1/exchangeInfo  coin-margined futures: none listed
    GET  /api/v3/klines         candles: symbol, interval, startTime, endTime, limit (default 500, max 1000)
    POST /api/v3/order          signed: a MARKET order, filled at once; the FULL answer, with its fill
    GET  /api/v3/order          signed: one order, by orderId or origClientOrderId
    GET  /api/v3/myTrades       signed: the account's fills in a market, optionally of one orderId
    POST /api/v3/orderList/oco  signed: an OCO pair closing a position, a LIMIT_MAKER target and a
                                STOP_LOSS stop; both rest until `trigger()` fills one and expires the other
    GET  /api/v3/orderList      signed: one order list, by orderListId or origClientOrderId
    DELETE /api/v3/orderList    signed: cancels both legs of an order list still resting
    GET  /sapi/v1/account/apiRestrictions  signed: what the key may do (`restrictions`; by default a key
                                as it should be: reading and spot trading, IP-restricted, no withdrawals)
    GET  /sapi/v1/asset/tradeFee  signed: the account's maker and taker fee per market (`taker_fee`, by
                                default the 0.1 % every order is charged; a test lowers it as a VIP tier)

Candles exist from LISTED up to the one open now, each a fixed function of its market, interval and open
time, so every test sees the same prices. A market order fills at the close of the hourly candle open now,
with Binance's 0.1 % taker commission, in the base asset for a buy and the quote asset for a sell.

Signed requests must carry the X-MBX-APIKEY header (the key given to the stand-in, when one is) and a
signature, which is not checked. As on Binance, a newClientOrderId is unique among open orders only: a
market order fills at once, so its id may be sent again and fills again. Not having placed it twice is the
client's business. An order list's client id is unique among all lists (the stand-in is stricter than
Binance here, which keeps it unique among open lists).

Failures are scripted per path, and optionally per method (`fail_next`, `stall_next`, `pass_next`);
every request received is recorded (`requests`, `requests_to`) and every order filled (`orders`)."""

import itertools
import json
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

from tests.stand_ins.serving import StandInServer

EXCHANGE_INFO = "/api/v3/exchangeInfo"
KLINES = "/api/v3/klines"
ORDER = "/api/v3/order"
MY_TRADES = "/api/v3/myTrades"
ORDER_LIST = "/api/v3/orderList"
OCO = "/api/v3/orderList/oco"
API_RESTRICTIONS = "/sapi/v1/account/apiRestrictions"
TRADE_FEE = "/sapi/v1/asset/tradeFee"
SIGNED = (ORDER, MY_TRADES, ORDER_LIST, OCO, API_RESTRICTIONS, TRADE_FEE)
LISTED = datetime(2025, 1, 1, tzinfo=UTC)
LISTED_MS = int(LISTED.timestamp() * 1000)
INTERVALS_MS = {"15m": 900_000, "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}
DEFAULT_LIMIT, MAX_LIMIT = 500, 1000
TAKER_COMMISSION = Decimal("0.001")
EIGHT_PLACES = Decimal("0.00000001")  # Binance quotes every amount with 8 decimals

# Error bodies as Binance sends them.
INVALID_SYMBOL = {"code": -1121, "msg": "Invalid symbol."}
INVALID_INTERVAL = {"code": -1120, "msg": "Invalid interval."}
RATE_LIMITED = {
    "code": -1003,
    "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API.",
}
INVALID_API_KEY = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
MISSING_API_KEY = {"code": -2014, "msg": "API-key format invalid."}
MISSING_SIGNATURE = {
    "code": -1102,
    "msg": "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
}
ORDER_NOT_FOUND = {"code": -2013, "msg": "Order does not exist."}
ORDER_LIST_NOT_FOUND = {"code": -2011, "msg": "Order list does not exist."}
PRICES_OUT_OF_ORDER = {"code": -1013, "msg": "The relationship of the prices for the orders is not correct."}
DUPLICATE_LIST = {"code": -2010, "msg": "Order list client order id is already in use."}
INSUFFICIENT_BALANCE = {"code": -2010, "msg": "Account has insufficient balance for requested action."}
INVALID_ORDER_TYPE = {"code": -1116, "msg": "Invalid orderType."}  # the stand-in fills MARKET orders only
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
    params: dict[str, str]  # of the query string and, for a POST, of the form body
    method: str = "GET"


@dataclass
class PlacedOrder:
    """An order the stand-in took: a market order, filled at once in one trade (whose id is the order's), or
    one leg of an OCO list, resting (NEW) until triggered, then FILLED at its price, or EXPIRED/CANCELED."""

    order_id: int
    client_order_id: str
    listing: Listing
    side: str  # BUY or SELL
    quantity: Decimal
    price: Decimal  # the fill price of a market order, the limit (or trigger) price of a leg
    commission: Decimal
    commission_asset: str
    time_ms: int
    type: str = "MARKET"  # or LIMIT_MAKER, STOP_LOSS
    status: str = "FILLED"  # or NEW, EXPIRED, CANCELED
    order_list_id: int = -1
    update_ms: int = 0

    @property
    def executed(self) -> Decimal:
        return self.quantity if self.status == "FILLED" else Decimal(0)

    @property
    def quote_quantity(self) -> Decimal:
        return (self.executed * self.price).quantize(EIGHT_PLACES)

    def _fields(self) -> dict:
        return {
            "symbol": self.listing.id,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id,
            "price": f"{self.price:.8f}" if self.type == "LIMIT_MAKER" else "0.00000000",
            "origQty": f"{self.quantity:.8f}",
            "executedQty": f"{self.executed:.8f}",
            "origQuoteOrderQty": "0.00000000",
            "cummulativeQuoteQty": f"{self.quote_quantity:.8f}",
            "status": self.status,
            "timeInForce": "GTC",
            "type": self.type,
            "side": self.side,
            "workingTime": self.time_ms,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def as_placed(self) -> dict:
        """As POST /api/v3/order answers with newOrderRespType FULL."""
        fill = {
            "price": f"{self.price:.8f}",
            "qty": f"{self.quantity:.8f}",
            "commission": f"{self.commission:.8f}",
            "commissionAsset": self.commission_asset,
            "tradeId": self.order_id,
        }
        return {**self._fields(), "transactTime": self.time_ms, "fills": [fill]}

    def as_order(self) -> dict:
        """As GET /api/v3/order answers."""
        return {
            **self._fields(),
            "stopPrice": f"{self.price:.8f}" if self.type == "STOP_LOSS" else "0.00000000",
            "icebergQty": "0.00000000",
            "time": self.time_ms,
            "updateTime": self.update_ms or self.time_ms,
            "isWorking": self.type == "MARKET" or self.status != "NEW",
        }

    def as_trade(self) -> dict:
        """As GET /api/v3/myTrades lists it."""
        return {
            "symbol": self.listing.id,
            "id": self.order_id,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "price": f"{self.price:.8f}",
            "qty": f"{self.quantity:.8f}",
            "quoteQty": f"{self.quote_quantity:.8f}",
            "commission": f"{self.commission:.8f}",
            "commissionAsset": self.commission_asset,
            "time": self.update_ms or self.time_ms,
            "isBuyer": self.side == "BUY",
            "isMaker": self.type == "LIMIT_MAKER",
            "isBestMatch": True,
        }


@dataclass
class OrderList:
    """An OCO pair: `above` and `below` the price, as Binance names the legs."""

    order_list_id: int
    list_client_order_id: str
    listing: Listing
    above: PlacedOrder
    below: PlacedOrder
    time_ms: int

    @property
    def legs(self) -> tuple[PlacedOrder, PlacedOrder]:
        return self.above, self.below

    def as_list(self) -> dict:
        """As GET /api/v3/orderList answers."""
        done = all(leg.status != "NEW" for leg in self.legs)
        return {
            "orderListId": self.order_list_id,
            "contingencyType": "OCO",
            "listStatusType": "ALL_DONE" if done else "EXEC_STARTED",
            "listOrderStatus": "ALL_DONE" if done else "EXECUTING",
            "listClientOrderId": self.list_client_order_id,
            "transactionTime": self.time_ms,
            "symbol": self.listing.id,
            "orders": [
                {"symbol": self.listing.id, "orderId": leg.order_id, "clientOrderId": leg.client_order_id}
                for leg in self.legs
            ],
        }

    def as_placed(self) -> dict:
        """As POST /api/v3/orderList/oco answers: the list and a report of each leg."""
        return {**self.as_list(), "orderReports": [leg.as_order() for leg in self.legs]}


@dataclass(frozen=True)
class _Script:
    status: int | None = None
    body: object = None
    delay: float = 0.0
    method: str | None = None  # any

    def applies_to(self, method: str) -> bool:
        return self.method in (None, method)


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


def price_now(listing: Listing) -> Decimal:
    """Where a market order fills: the close of the hourly candle open now."""
    open_ms = int(time.time() * 1000) // INTERVALS_MS["1h"] * INTERVALS_MS["1h"]
    return Decimal(kline(listing, open_ms, INTERVALS_MS["1h"])[4])


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


class ExchangeStandIn(StandInServer):
    """Binance on 127.0.0.1 and a free port; use as a context manager, or start() and stop().

    `api_key`, when given, is the only key signed requests are accepted with."""

    def __init__(self, *, api_key: str | None = None):
        super().__init__(_Handler)
        self.api_key = api_key
        # Binance's answer about the key; a test changes it to give a key other permissions.
        self.restrictions = {
            "ipRestrict": True,
            "createTime": LISTED_MS,
            "enableReading": True,
            "enableWithdrawals": False,
            "enableInternalTransfer": False,
            "enableMargin": False,
            "enableFutures": False,
            "permitsUniversalTransfer": False,
            "enableVanillaOptions": False,
            "enableFixApiTrade": False,
            "enableFixReadOnly": False,
            "enableSpotAndMarginTrading": True,
            "enablePortfolioMarginTrading": False,
        }
        self.taker_fee = TAKER_COMMISSION  # the account's tier, as /sapi/v1/asset/tradeFee tells it
        self.requests: list[Received] = []
        self.orders: list[PlacedOrder] = []
        self.order_lists: list[OrderList] = []
        self._order_ids = itertools.count(28_000_001)
        self.listed = {listing.id: listing for listing in LISTINGS}
        self._scripts: dict[str, deque[_Script]] = defaultdict(deque)

    def fail_next(self, path: str, status: int, body: object, *, method: str | None = None) -> None:
        """The next request to `path` (with `method`, if given) gets this status and body (JSON unless a
        str). Scripts for one path apply in the order they were given."""
        with self._lock:
            self._scripts[path].append(_Script(status=status, body=body, method=method))

    def stall_next(self, path: str, seconds: float, *, method: str | None = None) -> None:
        """The next request to `path` (with `method`, if given) is handled at once, but answered only after
        `seconds`: an order is placed even when the client has stopped waiting."""
        with self._lock:
            self._scripts[path].append(_Script(delay=seconds, method=method))

    def pass_next(self, path: str, *, method: str | None = None) -> None:
        """The next request to `path` (with `method`, if given) is answered as usual: it lets the scripts
        after this one apply to the requests after it."""
        with self._lock:
            self._scripts[path].append(_Script(method=method))

    def delist(self, market_id: str) -> None:
        """The market disappears, as when an exchange delists a pair clients have already loaded."""
        del self.listed[market_id]

    def trigger(self, list_client_order_id: str, leg: str) -> PlacedOrder:
        """The market reaches one leg of an OCO list: `leg` ("above" or "below") fills at its price with
        the taker commission, the other expires. Returns the filled leg."""
        with self._lock:
            listed = next(o for o in self.order_lists if o.list_client_order_id == list_client_order_id)
            filled, other = (listed.above, listed.below) if leg == "above" else (listed.below, listed.above)
            now = int(time.time() * 1000)
            buying = filled.side == "BUY"
            charged = filled.quantity if buying else filled.quantity * filled.price
            filled.status, filled.update_ms = "FILLED", now
            filled.commission = (charged * TAKER_COMMISSION).quantize(EIGHT_PLACES)
            filled.commission_asset = listed.listing.base if buying else listed.listing.quote
            other.status, other.update_ms = "EXPIRED", now
            return filled

    def requests_to(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]

    def respond(
        self, path: str, params: dict[str, str], *, method: str = "GET", api_key: str | None = None
    ) -> tuple[int, object]:
        with self._lock:
            self.requests.append(Received(path, params, method))
            script = self._next_script(path, method)
        if script.status is not None:
            answer = script.status, script.body
        else:
            answer = self._answer(method, path, params, api_key)
        if script.delay:
            self.stopping.wait(script.delay)
        return answer

    def _next_script(self, path: str, method: str) -> _Script:
        scripts = self._scripts[path]
        script = next((script for script in scripts if script.applies_to(method)), None)
        if script is None:
            return _Script()
        scripts.remove(script)
        return script

    def _answer(
        self, method: str, path: str, params: dict[str, str], api_key: str | None
    ) -> tuple[int, object]:
        if path in SIGNED:
            if not api_key:
                return 401, MISSING_API_KEY
            if self.api_key is not None and api_key != self.api_key:
                return 401, INVALID_API_KEY
            if not params.get("signature"):
                return 400, MISSING_SIGNATURE
        if path == EXCHANGE_INFO:
            return 200, self._exchange_info([_symbol_info(listing) for listing in self.listed.values()])
        if path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
            return 200, self._exchange_info([])
        if path == KLINES:
            return self._klines(params)
        if (method, path) == ("POST", ORDER):
            return self._new_order(params)
        if (method, path) == ("GET", ORDER):
            return self._query_order(params)
        if path == MY_TRADES:
            return self._my_trades(params)
        if (method, path) == ("POST", OCO):
            return self._new_oco(params)
        if (method, path) == ("GET", ORDER_LIST):
            return self._query_order_list(params)
        if (method, path) == ("DELETE", ORDER_LIST):
            return self._cancel_order_list(params)
        if (method, path) == ("GET", API_RESTRICTIONS):
            return 200, dict(self.restrictions)
        if (method, path) == ("GET", TRADE_FEE):
            fee = str(self.taker_fee)
            listed = self.listed.values()
            return 200, [{"symbol": x.id, "makerCommission": fee, "takerCommission": fee} for x in listed]
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

    def _new_order(self, params: dict[str, str]) -> tuple[int, object]:
        listing = self.listed.get(params.get("symbol", ""))
        if listing is None:
            return 400, INVALID_SYMBOL
        if params.get("type") != "MARKET":
            return 400, INVALID_ORDER_TYPE
        filters = {f["filterType"]: f for f in _symbol_info(listing)["filters"]}
        lot, notional = filters["LOT_SIZE"], filters["NOTIONAL"]
        quantity, price = Decimal(params["quantity"]), price_now(listing)
        if quantity < Decimal(lot["minQty"]) or quantity % Decimal(lot["stepSize"]):
            return 400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}
        if quantity * price < Decimal(notional["minNotional"]):
            return 400, {"code": -1013, "msg": "Filter failure: NOTIONAL"}
        buying = params["side"] == "BUY"
        charged = quantity if buying else quantity * price
        with self._lock:
            order = PlacedOrder(
                order_id=next(self._order_ids),
                client_order_id=params["newClientOrderId"],
                listing=listing,
                side=params["side"],
                quantity=quantity,
                price=price,
                commission=(charged * TAKER_COMMISSION).quantize(EIGHT_PLACES),
                commission_asset=listing.base if buying else listing.quote,
                time_ms=int(time.time() * 1000),
            )
            self.orders.append(order)
        return 200, order.as_placed()

    def _new_oco(self, params: dict[str, str]) -> tuple[int, object]:
        listing = self.listed.get(params.get("symbol", ""))
        if listing is None:
            return 400, INVALID_SYMBOL
        side = params.get("side")
        # Closing a long sells: the target is above the price, the stop below; closing a short, the reverse.
        wanted = {"SELL": ("LIMIT_MAKER", "STOP_LOSS"), "BUY": ("STOP_LOSS", "LIMIT_MAKER")}.get(side or "")
        if wanted is None or (params.get("aboveType"), params.get("belowType")) != wanted:
            return 400, INVALID_ORDER_TYPE
        step = Decimal(_symbol_info(listing)["filters"][1]["stepSize"])
        quantity = Decimal(params["quantity"])
        if quantity % step:
            return 400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}

        def price_of(position: str) -> Decimal:
            kind = params[f"{position}Type"]
            return Decimal(params[f"{position}StopPrice" if kind == "STOP_LOSS" else f"{position}Price"])

        above, below = price_of("above"), price_of("below")
        now_price = price_now(listing)
        if not below < now_price < above:
            return 400, PRICES_OUT_OF_ORDER
        with self._lock:
            if any(o.list_client_order_id == params["listClientOrderId"] for o in self.order_lists):
                return 400, DUPLICATE_LIST
            now, list_id = int(time.time() * 1000), next(self._order_ids)

            def leg(position: str, price: Decimal) -> PlacedOrder:
                return PlacedOrder(
                    order_id=next(self._order_ids),
                    client_order_id=params[f"{position}ClientOrderId"],
                    listing=listing,
                    side=side,
                    quantity=quantity,
                    price=price,
                    commission=Decimal(0),
                    commission_asset=listing.quote,
                    time_ms=now,
                    type=params[f"{position}Type"],
                    status="NEW",
                    order_list_id=list_id,
                )

            listed = OrderList(
                list_id, params["listClientOrderId"], listing, leg("above", above), leg("below", below), now
            )
            self.order_lists.append(listed)
            self.orders.extend(listed.legs)
        return 200, listed.as_placed()

    def _find_order_list(self, params: dict[str, str]) -> OrderList | None:
        client_ids = (params.get("origClientOrderId"), params.get("listClientOrderId"))
        return next(
            (
                o
                for o in self.order_lists
                if str(o.order_list_id) == params.get("orderListId") or o.list_client_order_id in client_ids
            ),
            None,
        )

    def _query_order_list(self, params: dict[str, str]) -> tuple[int, object]:
        with self._lock:
            listed = self._find_order_list(params)
            return (400, ORDER_LIST_NOT_FOUND) if listed is None else (200, listed.as_list())

    def _cancel_order_list(self, params: dict[str, str]) -> tuple[int, object]:
        with self._lock:
            listed = self._find_order_list(params)
            if listed is None or listed.listing.id != params.get("symbol"):
                return 400, ORDER_LIST_NOT_FOUND
            if all(leg.status != "NEW" for leg in listed.legs):
                return 400, {"code": -2011, "msg": "Unknown order sent."}
            for leg in listed.legs:
                leg.status, leg.update_ms = "CANCELED", int(time.time() * 1000)
            return 200, {**listed.as_list(), "orderReports": [leg.as_order() for leg in listed.legs]}

    def _query_order(self, params: dict[str, str]) -> tuple[int, object]:
        with self._lock:
            matching = [
                order
                for order in self.orders
                if order.listing.id == params.get("symbol")
                and (
                    str(order.order_id) == params.get("orderId")
                    or order.client_order_id == params.get("origClientOrderId")
                )
            ]
        if not matching:
            return 400, ORDER_NOT_FOUND
        return 200, matching[-1].as_order()  # a reused client order id names its latest order

    def _my_trades(self, params: dict[str, str]) -> tuple[int, object]:
        with self._lock:
            return 200, [
                order.as_trade()
                for order in self.orders
                if order.listing.id == params.get("symbol")
                and order.status == "FILLED"
                and params.get("orderId") in (None, str(order.order_id))
            ]


class _Handler(BaseHTTPRequestHandler):
    server_version = "stand-in"

    def do_GET(self):
        self._respond()

    def do_POST(self):
        self._respond()

    def do_DELETE(self):
        self._respond()

    def _respond(self):
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query))
        if self.command in ("POST", "DELETE"):
            # ccxt signs a POST's parameters into a form body.
            params.update(parse_qsl(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()))
        status, body = self.server.stand_in.respond(
            url.path, params, method=self.command, api_key=self.headers.get("X-MBX-APIKEY")
        )
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
