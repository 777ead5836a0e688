"""What trading a market costs: the one model the paper broker, the monitor's exits, the replay and the
scoring of untraded calls read (through `trades.brokers.simulation.paper_costs`): a taker fee on each fill,
and a bid-ask spread, half of which a market order pays against it (docs/learning.md, "Costs and fills").

Where the figures come from, first found first:
1. costs recorded with a stored market (`import_candles --fee-pct --spread`, or the admin's StoredMarket);
2. for a ccxt exchange, the fee ccxt gives for the market (`market['taker']`, or the account's tier through
   `fetch_trading_fees`), remembered in this process when `market.exchanges` read it;
3. defaults by asset class (the class recorded with the market, else the one its names show);
4. for a market of no known class, the global settings TRADINGAI_SIMULATION_FEE_PCT and
   TRADINGAI_SIMULATION_SLIPPAGE_PCT (a spread of twice the slippage), as before costs were per market."""

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings

from .errors import MarketDataError
from .models import MAX_COST_PCT, StoredMarket
from .sources import SAMPLE_EXCHANGE

if TYPE_CHECKING:
    from accounts.models import ExchangeAccount

logger = logging.getLogger(__name__)

CRYPTO, FX, STOCK = "crypto", "fx", "stock"
ASSET_CLASSES = (CRYPTO, FX, STOCK)

# (taker fee %, spread %) by asset class. Crypto: the common 0.10 % taker fee of the large spot exchanges and
# the 0.05 % a side the paper broker always slipped. FX: no fee, about a pip of spread (0.0001 at EUR/USD's
# 1.25 is 0.008 %). US stocks: a fraction of a cent a share (0.0035 USD at 70 USD is 0.005 %) and a cent or
# two of spread on a liquid share.
DEFAULTS = {
    CRYPTO: (Decimal("0.10"), Decimal("0.10")),
    FX: (Decimal(0), Decimal("0.008")),
    STOCK: (Decimal("0.005"), Decimal("0.02")),
}
MAX_PCT = Decimal(MAX_COST_PCT)

# ISO 4217 codes of the currencies traded on the FX market: a pair of two is a currency pair.
FIAT = frozenset({
    "USD", "EUR", "JPY", "GBP", "CHF", "AUD", "NZD", "CAD", "SEK", "NOK", "DKK", "HKD", "SGD", "CNH", "CNY",
    "MXN", "ZAR", "TRY", "PLN", "HUF", "CZK", "ILS", "INR", "KRW", "THB",
})  # fmt: skip
# Coins that name a market as crypto when either side of its symbol is one.
COINS = frozenset({
    "BTC", "XBT", "ETH", "USDT", "USDC", "BUSD", "DAI", "BNB", "SOL", "XRP", "ADA", "DOGE", "LTC", "DOT",
    "AVAX", "TRX", "LINK",
})  # fmt: skip


@dataclass(frozen=True)
class MarketCosts:
    fee_pct: Decimal  # taker fee, % of each fill's value
    spread_pct: Decimal  # bid-ask spread, % of the price
    basis: str  # where the figures come from, as the pages say it

    @property
    def slippage_pct(self) -> Decimal:
        """What a market order loses against the candle's price, % of it: half the spread."""
        return self.spread_pct / 2


def check_pct(name: str, value: Decimal) -> Decimal:
    """`value` as a cost in %, or a ValueError naming `name` and what is wrong with it."""
    if not value.is_finite():
        raise ValueError(f"{name} must be a number, not {value}")
    if value < 0:
        raise ValueError(f"{name} cannot be negative ({value} %)")
    if value > MAX_PCT:
        raise ValueError(f"{name} of {value} % is absurd: at most {MAX_PCT} % (in %, so 0.1 means 0.1 %)")
    return value


def asset_class_of(exchange: str, symbol: str, recorded: str = "") -> str:
    """The market's asset class: the one recorded with it, else crypto on a ccxt exchange or with a coin on
    either side, FX for two currencies, else "" (not known)."""
    if recorded:
        return recorded
    base, _, quote = symbol.partition("/")
    if base in COINS or quote in COINS or _is_ccxt(exchange):
        return CRYPTO
    if base in FIAT and quote in FIAT:
        return FX
    return ""


def _is_ccxt(exchange: str) -> bool:
    # Importing ccxt for its list takes a second: not for the shipped market, which is no exchange of its.
    if exchange == SAMPLE_EXCHANGE:
        return False
    from .exchanges import is_ccxt_exchange

    return is_ccxt_exchange(exchange)


# What exchanges said their fees are, read in this process: (exchange, symbol, the account's pk or None for
# the market's published fee) -> (fee %, basis).
_exchange_fees: dict[tuple[str, str, int | None], tuple[Decimal, str]] = {}


def remember_exchange_fee(
    exchange: str, symbol: str, fee_pct: Decimal, basis: str, account: "ExchangeAccount | None" = None
) -> None:
    _exchange_fees[(exchange, symbol, account.pk if account else None)] = (fee_pct, basis)


def _ask_account_fee(account: "ExchangeAccount", symbol: str) -> None:
    """The account's fee for the market, remembered; a failure to ask leaves the market's fee in force."""
    from .exchanges import account_client, taker_fee_pct  # ccxt's module, which imports this one

    try:
        fee, basis = taker_fee_pct(account_client(account), symbol, tier=True)
    except MarketDataError as e:
        logger.warning("the fee of %s on %s for account %s: %s", symbol, account.exchange, account.pk, e)
        return
    remember_exchange_fee(account.exchange, symbol, fee, basis, account)


def costs_of(exchange: str, symbol: str, account: "ExchangeAccount | None" = None) -> MarketCosts:
    """The market's costs (see the module's docstring for the order): one query, and with `account` (a bot's
    exchange account on a ccxt exchange) the account's fee tier asked of the exchange, when ccxt can. The
    paper broker caches them (trades.brokers.simulation.market_costs)."""
    asked = account is not None and (exchange, symbol, account.pk) in _exchange_fees
    if account is not None and account.exchange == exchange and not asked:
        _ask_account_fee(account, symbol)  # once per process: a tier changes with months of volume
    stored = StoredMarket.objects.filter(exchange=exchange, symbol=symbol).first()
    asset_class = asset_class_of(exchange, symbol, stored.asset_class if stored else "")
    if asset_class:
        fee, spread = DEFAULTS[asset_class]
        basis = f"{asset_class} default"
    else:
        fee, spread = settings.SIMULATION_FEE_PCT, 2 * settings.SIMULATION_SLIPPAGE_PCT
        basis = "global default"
    told = _exchange_fees.get((exchange, symbol, account.pk if account else None)) or _exchange_fees.get(
        (exchange, symbol, None)
    )
    if told:
        fee, basis = told
    if stored and (stored.fee_pct is not None or stored.spread_pct is not None):
        # A figure recorded alone keeps the other one's default.
        fee = stored.fee_pct if stored.fee_pct is not None else fee
        spread = stored.spread_pct if stored.spread_pct is not None else spread
        basis = "recorded with the market"
    return MarketCosts(fee, spread, basis)
