from datetime import UTC, datetime, time, timedelta

from django import forms
from django.conf import settings

from accounts.models import ExchangeAccount, ModelConnection
from accounts.quotas import quotas_of
from accounts.two_factor import LIVE_NEEDS_TWO_FACTOR, has_two_factor
from core.values import Regime, Sentiment
from learning.policy import AVOIDABLE, avoid_condition_error
from market.exchanges import exchange_choices, has_stored_candles, is_ccxt_exchange
from market.indicators import MIN_CANDLES
from market.names import normalise_exchange, normalise_symbol

from .backtests import stored_markets
from .charts.urls import UnsafeChartUrlError, checked_tradingview_url
from .models import Backtest, Bot
from .services import bot_save

# Fields that define what a bot trades; changing them under a running bot would mix two markets in one
# history, so they can change only while it is stopped.
MARKET_FIELDS = ("exchange", "symbol", "timeframe", "mode", "exchange_account")


class BotForm(forms.ModelForm):
    tradingview_url = forms.URLField(
        label="TradingView chart URL",
        required=False,
        assume_scheme="https",
        help_text="Only for the TradingView chart source.",
    )

    class Meta:
        model = Bot
        fields = (
            "name",
            "exchange",
            "symbol",
            "timeframe",
            "mode",
            "exchange_account",
            "live_confirmed",
            "analyst",
            "model_connection",
            "model_name",
            "chart_source",
            "tradingview_url",
            "starting_balance",
            "risk_per_trade_pct",
            "max_position_pct",
            "max_open_trades",
            "daily_loss_limit_pct",
            "min_confidence",
        )
        labels = {
            "exchange": "Exchange",
            "symbol": "Market",
            "timeframe": "Candles of",
            "exchange_account": "Exchange account",
            "live_confirmed": "I confirm this bot may place real orders with my exchange account",
            "chart_source": "Chart the analyst looks at",
            "starting_balance": "Paper balance",
            "risk_per_trade_pct": "Risk per trade (% of equity)",
            "max_position_pct": "Largest position (% of equity)",
            "max_open_trades": "Open trades at most",
            "daily_loss_limit_pct": "Daily loss limit (% of equity)",
            "min_confidence": "Minimum confidence (0 to 100)",
            "analyst": "Analysed by",
            "model_connection": "Your model connection",
            "model_name": "Model",
        }
        help_texts = {"symbol": "The pair as the exchange writes it: BASE/QUOTE, e.g. BTC/USDT or EUR/USD."}
        widgets = {
            "symbol": forms.TextInput(attrs={"placeholder": "BTC/USDT"}),
            "model_name": forms.TextInput(attrs={"placeholder": "gpt-4o-mini, llava:13b"}),
        }

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner
        # As stored, for the audit log: validation writes the submitted values onto the instance.
        self.live_before = (self.instance.mode, self.instance.live_confirmed) if self.instance.pk else None
        self.fields["exchange_account"].queryset = ExchangeAccount.objects.filter(owner=owner).order_by(
            "label"
        )
        self.fields[
            "exchange_account"
        ].help_text = "Needed for live trading; add one under Exchange accounts."
        # Only one's own connections are offered; another user's id is "not one of the choices".
        self.fields["model_connection"].queryset = ModelConnection.objects.filter(owner=owner).order_by(
            "label"
        )
        self.fields[
            "model_connection"
        ].help_text = (
            "For your own model: add one under Settings → Models (an OpenAI key, or your own server)."
        )
        # A list to choose from; what is checked is still the text (the API sends any), so a name the
        # list lacks gets the same explanation on both.
        choices = exchange_choices()
        if self.instance.exchange and self.instance.exchange not in dict(choices):
            choices.insert(0, (self.instance.exchange, self.instance.exchange))
        self.fields["exchange"].widget = forms.Select(choices=[("", "Choose an exchange"), *choices])
        # static/js/bot_form.js shows these only where they apply (they are validated the same either way).
        for name in ("exchange_account", "live_confirmed"):
            self.fields[name].widget.attrs["data-show-when"] = "mode=LIVE"
        self.fields["starting_balance"].widget.attrs["data-show-when"] = "mode=SIMULATION"
        self.fields["tradingview_url"].widget.attrs["data-show-when"] = "chart_source=TRADINGVIEW"
        for name in ("model_connection", "model_name"):
            self.fields[name].widget.attrs["data-show-when"] = "analyst=OWN_MODEL"

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        clash = Bot.objects.filter(owner=self.owner, name=name).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError("You already have a bot with this name.")
        return name

    def clean_symbol(self):
        return normalise_symbol(self.cleaned_data["symbol"])

    def clean_exchange(self):
        return normalise_exchange(self.cleaned_data["exchange"])

    def clean(self):
        data = super().clean()
        exchange, symbol, timeframe = data.get("exchange"), data.get("symbol"), data.get("timeframe")
        mode, account = data.get("mode"), data.get("exchange_account")

        if exchange and not is_ccxt_exchange(exchange):
            # A market that exists only as stored candles (the shipped sample) can be paper-traded.
            paper_on_stored = mode != Bot.Mode.LIVE and has_stored_candles(exchange, symbol, timeframe)
            if not paper_on_stored:
                self.add_error(
                    "exchange", f"'{exchange}' is not an exchange TradingAI can connect to (a ccxt id)."
                )

        if mode == Bot.Mode.LIVE:
            if not settings.LIVE_TRADING_ENABLED:
                self.add_error("mode", "Live trading is disabled on this server; use simulation.")
            if account is None:
                self.add_error(
                    "exchange_account", "A live bot needs an exchange account of yours; add one first."
                )
            elif exchange and account.exchange != exchange:
                self.add_error("exchange_account", f"This account is for {account.exchange}, not {exchange}.")
            if not data.get("live_confirmed"):
                self.add_error("live_confirmed", "Confirm that this bot may place real orders.")
            if not has_two_factor(self.owner):
                self.add_error("mode", LIVE_NEEDS_TWO_FACTOR)

        if data.get("analyst") == Bot.Analyst.OWN_MODEL:
            if data.get("model_connection") is None and "model_connection" not in self.errors:
                self.add_error("model_connection", "Choose one of your model connections for your own model.")
            if not data.get("model_name") and "model_name" not in self.errors:
                self.add_error("model_name", "Name the model to ask, as your server knows it.")
        else:
            # The platform's analysts use neither; a connection kept here would only block its deletion.
            data["model_connection"], data["model_name"] = None, ""

        # Checked whatever the chart source, so that no unsafe URL is stored to be switched on later.
        if url := data.get("tradingview_url"):
            try:
                data["tradingview_url"] = checked_tradingview_url(url)
            except UnsafeChartUrlError as e:
                self.add_error("tradingview_url", str(e))
        elif data.get("chart_source") == Bot.ChartSource.TRADINGVIEW and "tradingview_url" not in self.errors:
            self.add_error("tradingview_url", "Give the TradingView chart URL to screenshot.")

        if self.instance.pk and self.instance.status != Bot.Status.STOPPED:
            changed = [f for f in MARKET_FIELDS if f in self.changed_data]
            if changed:
                raise forms.ValidationError(
                    f"Stop the bot before changing {', '.join(changed).replace('_', ' ')}."
                )
        return data

    def save(self, commit=True):
        bot = super().save(commit=False)
        bot.owner = self.owner
        if bot.mode == Bot.Mode.SIMULATION:
            bot.live_confirmed = False
        if commit:
            bot_save(bot, self.live_before, actor=self.owner)
        return bot


# The avoidable conditions as the policy's help page names them (templates/learning/help_policy.html).
CONDITION_WORDS = {"regime": ("The market is", Regime), "market_sentiment": ("The analyst is", Sentiment)}


def condition_in_words(field: str, value: str) -> str:
    """'regime', 'TREND_HIGH_VOL' -> 'The market is: trend, high volatility'."""
    prefix, choices = CONDITION_WORDS[field]
    return f"{prefix}: {choices(value).label.lower()}"


class PolicyPinForm(forms.Form):
    """Fix the policy's values by hand; a value left empty goes back to what the bot learns."""

    min_confidence = forms.FloatField(
        label="Minimum confidence",
        min_value=0,
        max_value=100,
        required=False,
        help_text="0 to 100: calls below it are not traded. Empty: learned.",
    )
    size_factor = forms.FloatField(
        label="Size factor",
        min_value=0,
        max_value=3,
        required=False,
        help_text="The share of the bot's risk per trade each trade takes: 1 all of it, 0.5 half, 0 no "
        "trades. Empty: learned.",
    )
    avoid_conditions = forms.MultipleChoiceField(
        label="Avoid",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=[(f"{n}:{v}", condition_in_words(n, v)) for n, values in AVOIDABLE.items() for v in values],
        help_text="Markets to stay out of; none ticked follows what the bot learns",
    )

    def __init__(self, *args, initial=None, **kwargs):
        # A pin is stored as the decision reads it ({"field", "value"} objects); the boxes name them by text.
        initial = dict(initial or {})
        if initial.get("avoid_conditions"):
            initial["avoid_conditions"] = [f"{c['field']}:{c['value']}" for c in initial["avoid_conditions"]]
        super().__init__(*args, initial=initial, **kwargs)

    def clean_avoid_conditions(self):
        # The choices admit only allowed pairs; the shared rule is still asked, so form and API cannot drift.
        ticked = self.cleaned_data["avoid_conditions"]
        conditions = [dict(zip(("field", "value"), choice.split(":", 1), strict=True)) for choice in ticked]
        if error := next(filter(None, map(avoid_condition_error, conditions)), ""):
            raise forms.ValidationError(error)
        return conditions or None


class BacktestForm(forms.ModelForm):
    """A backtest's market (one with stored candles, chosen from the list), its range in whole UTC days, and
    its policy settings, within the owner's plan (accounts.quotas: candles per backtest)."""

    market = forms.ChoiceField(help_text="The markets whose candles are stored here.")
    start_day = forms.DateField(
        label="From", widget=forms.DateInput(attrs={"type": "date"}), help_text="UTC day."
    )
    end_day = forms.DateField(
        label="To", widget=forms.DateInput(attrs={"type": "date"}), help_text="UTC day, included."
    )

    class Meta:
        model = Backtest
        fields = (
            "starting_balance",
            "risk_per_trade_pct",
            "max_open_trades",
            "daily_loss_limit_pct",
            "min_confidence",
        )
        labels = {
            "starting_balance": "Starting balance",
            "risk_per_trade_pct": "Risk per trade (%)",
            "max_open_trades": "Open trades at most",
            "daily_loss_limit_pct": "Daily loss limit (%)",
            "min_confidence": "Minimum confidence",
        }
        help_texts = {
            "starting_balance": "The paper account's balance, in the market's quote currency.",
            "min_confidence": "The static policy trades calls at least this confident; the adaptive one "
            "starts there and learns its own threshold.",
        }

    field_order = ("market", "start_day", "end_day")

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.owner = owner
        self.markets = {market.key: market for market in stored_markets()}
        self.fields["market"].choices = [
            (
                key,
                f"{m.exchange} {m.symbol} {m.timeframe}: {m.first_open:%Y-%m-%d} to {m.last_open:%Y-%m-%d} "
                f"({m.candles:,} candles)",
            )
            for key, m in self.markets.items()
        ]
        if self.markets and not self.is_bound:
            # The last 30 days of the first market: a backtest of a few hundred to a few thousand cycles.
            first = next(iter(self.markets.values()))
            self.initial.setdefault("end_day", first.last_open.date())
            self.initial.setdefault(
                "start_day", max(first.first_open, first.last_open - timedelta(days=30)).date()
            )

    def clean(self):
        data = super().clean()
        market = self.markets.get(data.get("market"))
        start_day, end_day = data.get("start_day"), data.get("end_day")
        if market is None or start_day is None or end_day is None:
            return data
        if end_day < start_day:
            self.add_error("end_day", "The range ends before it starts.")
            return data
        start = datetime.combine(start_day, time(0), UTC)
        # The last slot is the close of the day's last candle: midnight after the day.
        end = datetime.combine(end_day + timedelta(days=1), time(0), UTC)
        first_slot = market.first_slot()
        if first_slot is None:
            self.add_error(
                "market",
                f"{market.candles} candles are stored for it; a backtest needs more than {MIN_CANDLES}, "
                "the indicators' warm-up.",
            )
            return data
        if end < first_slot:
            self.add_error(
                "end_day",
                f"The first {MIN_CANDLES} candles warm the indicators up, so the first slot is "
                f"{first_slot:%Y-%m-%d %H:%M} UTC: end the range after it.",
            )
            return data
        if start > market.last_slot:
            self.add_error(
                "start_day",
                f"The stored candles end at {market.last_slot:%Y-%m-%d %H:%M} UTC: start before it.",
            )
            return data
        # Within the slots there are: a day of the range the candles do not cover runs no cycle.
        start, end = max(start, first_slot), min(end, market.last_slot)
        cycles = market.slots_between(start, end)
        cap = quotas_of(self.instance.owner).backtest_max_candles
        if cycles > cap:
            raise forms.ValidationError(
                f"This range holds {cycles:,} candles and your plan allows {cap:,} a backtest: shorten it.",
                code="quota",
            )
        self.instance.exchange, self.instance.symbol, self.instance.timeframe = (
            market.exchange,
            market.symbol,
            market.timeframe,
        )
        self.instance.start, self.instance.end = start, end
        return data
