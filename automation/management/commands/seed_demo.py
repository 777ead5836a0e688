import json

from django.core.management.base import BaseCommand, CommandError

from automation.demo import history_missing, history_queued, seed_demo
from automation.replay import Progress
from automation.tasks import seed_demo_history_task


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
        parser.add_argument(
            "--background",
            action="store_true",
            help="Leave the --history to a worker (the default queue): the command returns at once, the "
            "dashboard shows the history's progress, and the bot starts when its history is there.",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, reset_password=False, history=0, background=False, **options):
        if history < 0:
            raise CommandError("--history takes a number of hours: 0 or more")
        if background and not history:
            raise CommandError("--background needs --history N")
        in_command = 0 if background else history
        result = seed_demo(reset_password=reset_password, history=in_command, progress=self.progress)
        queued = 0
        if background and (queued := history_missing(result.bot, history)):
            history_queued(result.bot, queued)
            seed_demo_history_task.delay(result.bot.pk, history)
        if options["json"]:
            data = {"email": result.email, "bot_id": result.bot.pk, "password": result.password}
            if history:
                data["queued" if background else "cycles"] = queued if background else result.cycles
            self.stdout.write(json.dumps(data))
            return
        self.stdout.write(f"Demo bot “{result.bot.name}” on {result.candles} stored EUR/USD 1h candles.")
        if background:
            self.stdout.write(
                f"History: {queued} cycle(s) left to a worker, the dashboard shows how far it came."
                if queued
                else f"History: the last {history} hourly slots had all run before."
            )
        elif history:
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
