import json

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from automation.analysis import analyse_market
from automation.analysts.base import AnalystError
from automation.analysts.service import ANALYSTS, get_analyst
from core.cli import iso_time
from market.errors import MarketDataError
from market.exchanges import source_for
from market.names import normalise_market
from market.sources import Market
from market.timeframes import TIMEFRAMES


class Command(BaseCommand):
    help = (
        "Run steps 1-4 of the cycle (candles, indicators, chart, analysis) for a market as of a time, on "
        "stored candles when there are any, else live through ccxt, and print the analysis."
    )

    def add_arguments(self, parser):
        parser.add_argument("--exchange", required=True)
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--timeframe", required=True, choices=TIMEFRAMES)
        parser.add_argument(
            "--at", type=iso_time, help="analyse the candles closed by this time (default: now)"
        )
        parser.add_argument("--analyst", choices=ANALYSTS, help="default: openai with a key, else technical")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, exchange, symbol, timeframe, at, analyst, **options):
        market = Market(*normalise_market(exchange, symbol), timeframe)
        try:
            # The candles a bot on this market would read (the stored ones, the sample's loop, the exchange).
            source = source_for(market)
            done = analyse_market(market, source=source, analyst=get_analyst(analyst), until=at)
        except (MarketDataError, AnalystError) as e:
            raise CommandError(f"{type(e).__name__}: {e}") from None

        chart = self._chart_path(done.chart)
        analysis = done.result.analysis
        if options["json"]:
            self.stdout.write(json.dumps({**analysis.model_dump(), "chart": chart}, indent=2))
            return
        self.stdout.write(
            f"{market.symbol} {market.timeframe} on {market.exchange}, as of {done.as_of:%Y-%m-%d %H:%M} UTC"
        )
        self.stdout.write(f"Analyst: {done.result.analyst} ({done.result.model_name})")
        self.stdout.write(
            f"{analysis.recommendation} · {analysis.market_sentiment} · confidence {analysis.confidence}"
            f" · entry {analysis.entry} stop {analysis.stop_loss} target {analysis.take_profit}"
            f" · predicted {analysis.predicted_price} in {analysis.horizon} candles"
        )
        if "level_problem" in done.result.notes:
            self.stdout.write(
                f"Not tradable as stated ({done.result.notes['level_problem']}): "
                f"{done.result.notes['original_recommendation']} turned into HOLD."
            )
        self.stdout.write(f"Summary: {analysis.summary}")
        self.stdout.write(f"Reasoning: {analysis.reasoning}")
        if done.result.prompt_tokens:
            self.stdout.write(
                f"Tokens: {done.result.prompt_tokens} in, {done.result.completion_tokens} out;"
                f" cost ${done.result.cost_usd}"
            )
        self.stdout.write(f"Chart: {chart}")
        self.stdout.write("Timings (s): " + ", ".join(f"{k} {v}" for k, v in done.timings.items()))

    @staticmethod
    def _chart_path(name: str) -> str:
        try:
            return default_storage.path(name)
        except NotImplementedError:  # remote storages have no local path
            return default_storage.url(name)
