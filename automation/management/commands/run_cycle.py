import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from automation.cycle import run_cycle
from automation.models import Bot
from automation.schedule import slot_of
from core.cli import iso_time


class Command(BaseCommand):
    help = (
        "Run one cycle of a bot now, in this process. For the same slot again it reports the same run and "
        "changes nothing. On stored candles the market clock is the slot."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bot", type=int, required=True, help="the bot's id")
        parser.add_argument("--slot", type=iso_time, help="the period to run (default: the current one)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, bot: int, slot, **options):
        try:
            instance = Bot.objects.get(pk=bot)
        except Bot.DoesNotExist:
            raise CommandError(f"there is no bot {bot}") from None
        run = run_cycle(instance.pk, slot_of(instance, slot or timezone.now()))
        analysis = getattr(run, "analysis", None)
        trade = getattr(analysis, "trade", None) if analysis else None
        report = {
            "run_id": run.pk,
            "bot_id": instance.pk,
            "slot": run.slot.isoformat(),
            "status": run.status,
            "failed_step": run.failed_step,
            "error": run.error,
            "timings": run.timings,
            "analysis_id": analysis.pk if analysis else None,
            "recommendation": analysis.recommendation if analysis else None,
            "decision": (analysis.feedback_data.get("decision") if analysis else None),
            "trade_id": trade.pk if trade else None,
        }
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write(
            f"Run {run.pk} of bot {instance.pk} for {run.slot:%Y-%m-%d %H:%M}: {run.status}"
            + (f" in {run.failed_step}: {run.error}" if run.failed_step else "")
        )
        if analysis:
            self.stdout.write(f"Analysis {analysis.pk}: {analysis.recommendation}; {report['decision']}")
        if trade:
            self.stdout.write(f"Trade {trade.pk}: {trade}")
