from django import forms
from django.conf import settings

from accounts.models import ExchangeAccount
from accounts.two_factor import LIVE_NEEDS_TWO_FACTOR, has_two_factor
from core.values import Regime, Sentiment
from learning.policy import AVOIDABLE, avoid_condition_error
from market.exchanges import exchange_choices, has_stored_candles, is_ccxt_exchange
from market.names import normalise_exchange, normalise_symbol

from .charts.urls import UnsafeChartUrlError, checked_tradingview_url
from .models import Bot
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
        }
        help_texts = {"symbol": "The pair as the exchange writes it: BASE/QUOTE, e.g. BTC/USDT or EUR/USD."}
        widgets = {"symbol": forms.TextInput(attrs={"placeholder": "BTC/USDT"})}

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
