import json
import time
from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from automation.evaluation import evaluate, write_report
from automation.replay import Progress, ReplaySpec, replay
from market.models import Candle
from market.names import normalise_market
from market.timeframes import TIMEFRAME_PERIODS


def moment(value: str) -> datetime:
    parsed = parse_datetime(value) or parse_datetime(f"{value}T00:00:00")
    if parsed is None:
        raise ValueError(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{value} has no time zone; add Z or +00:00")
    return parsed


class Command(BaseCommand):
    help = (
        "Replay the whole loop (analyst, policy, paper broker, monitor, outcomes, learning) over stored "
        "candles with a simulated clock, into a replay account of its own; resumable. With --report, write "
        "the evaluation (HTML with plots, and JSON) to DIR."
    )

    def add_arguments(self, parser):
        parser.add_argument("--exchange", required=True)
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--timeframe", required=True, choices=sorted(TIMEFRAME_PERIODS))
        parser.add_argument("--from", dest="start", type=moment, help="first slot, ISO 8601 with a zone")
        parser.add_argument("--to", dest="end", type=moment, help="last slot, ISO 8601 with a zone")
        parser.add_argument("--analyst", choices=("technical", "openai"), default="technical")
        parser.add_argument(
            "--report", type=Path, metavar="DIR", help="write report.html and report.json here"
        )
        parser.add_argument(
            "--json", action="store_true", help="print the report's figures as one JSON object"
        )

    def handle(self, *args, exchange, symbol, timeframe, start, end, analyst, report, **options):
        if start and end and start > end:
            raise CommandError("--from is after --to")
        exchange, symbol = normalise_market(exchange, symbol)
        if not Candle.objects.filter(exchange=exchange, symbol=symbol, timeframe=timeframe).exists():
            raise CommandError(
                f"no stored candles for {exchange} {symbol} {timeframe}: load them with import_candles or "
                "fetch_candles first"
            )
        spec = ReplaySpec(exchange, symbol, timeframe, analyst, start, end)
        bar = ProgressBar(self.stderr)
        bot = replay(spec, progress=bar)
        bar.finish()
        figures = evaluate(bot, start=start, end=end)
        if report:
            written = write_report(figures, report)
            self.stderr.write(f"report: {written}")
        if options["json"]:
            self.stdout.write(json.dumps(figures, default=str))
        else:
            self.stdout.write(summary(figures))


def summary(figures: dict) -> str:
    runs, adaptive = figures["runs"], figures["strategies"]["adaptive"]
    accuracy = figures["accuracy"]
    return "\n".join(
        [
            f"Replay of {figures['market']} ({figures['analyst']}): {runs['succeeded']} cycles, "
            f"{runs['failed']} failed, {figures['analyses']} analyses, {accuracy['n']} resolved",
            f"  accuracy {_pct(accuracy['rate'])} (n={accuracy['n']}), Brier {figures['brier']['score']}",
            _costs(figures["costs"]),
            *([f"  candles adjusted for splits: {_splits(figures['splits'])}"] if figures["splits"] else []),
            f"  adaptive policy: {adaptive['trades']} trades, return {_pct(adaptive['return'])}, "
            f"max drawdown {_pct(adaptive['max_drawdown'])}",
            *(
                f"  {name}: return {_pct(s['return'])}, max drawdown {_pct(s['max_drawdown'])}"
                for name, s in figures["strategies"].items()
                if name != "adaptive"
            ),
            "What the figures say:",
            *(f"  - {claim['text']}" for claim in figures["claims"]),
        ]
    )


def _costs(costs: dict) -> str:
    market, static = costs["market"], costs["static"]
    return (
        f"  costs: fee {market['fee_pct']} %, spread {market['spread_pct']} % ({market['basis']}); "
        f"a mean of {static['mean_cost_r']} R a trade (n={static['n']}, the static policy's calls), whose "
        f"expectancy is {static['expectancy_r']} R with costs and {static['expectancy_r_without_costs']} R "
        "without"
    )


def _splits(splits: list[dict]) -> str:
    return ", ".join(f"{s['ratio']} on {s['date']}" for s in splits)


def _pct(value) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


class ProgressBar:
    WIDTH = 30

    def __init__(self, stream):
        self.stream = stream
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, progress: Progress) -> None:
        elapsed = time.monotonic() - self.started
        rate = progress.done / elapsed if elapsed else 0.0
        left = (progress.total - progress.done) / rate if rate else 0.0
        filled = int(self.WIDTH * progress.done / progress.total) if progress.total else self.WIDTH
        self.stream.write(
            f"\rreplay [{'#' * filled}{'.' * (self.WIDTH - filled)}] {progress.done}/{progress.total} "
            f"cycles, {rate:.0f}/s, {left:.0f} s left, {progress.failed} failed",
            ending="",
        )
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.stream.write("")
