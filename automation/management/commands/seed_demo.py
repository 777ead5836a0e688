import json

from django.core.management.base import BaseCommand, CommandError

from automation.demo import seed_demo
from automation.replay import Progress


class Command(BaseCommand):
    help = "Create the demo account and its simulation bot on the shipped EUR/USD candles. Safe to run twice."

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset-password", action="store_true", help="Give the demo account a new password."
        )
        parser.add_argument(
            "--history",
            type=int,
            default=0,
            metavar="N",
            help="Also run the demo bot's cycles over the last N hourly candles but two days' worth (slots "
            "already run are skipped), so that its pages have analyses, charts, trades and insights.",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, reset_password=False, history=0, **options):
        if history < 0:
            raise CommandError("--history takes a number of hours: 0 or more")
        result = seed_demo(reset_password=reset_password, history=history, progress=self.progress)
        if options["json"]:
            data = {"email": result.email, "bot_id": result.bot.pk, "password": result.password}
            if history:
                data["cycles"] = result.cycles
            self.stdout.write(json.dumps(data))
            return
        self.stdout.write(f"Demo bot “{result.bot.name}” on {result.candles} stored EUR/USD 1h candles.")
        if history:
            self.stdout.write(
                f"History: {result.cycles} new cycle(s) over the last {history} hourly slots; the others had "
                "run before."
            )
        if result.password:
            self.stdout.write(self.style.SUCCESS(f"Demo login: {result.email}  password: {result.password}"))
        else:
            self.stdout.write(
                f"Demo login: {result.email} (password unchanged; "
                "`python manage.py seed_demo --reset-password` sets a new one)"
            )

    def progress(self, progress: Progress) -> None:
        # stderr, so that --json's stdout stays one object
        self.stderr.write(f"history: {progress.done}/{progress.total} cycles")
