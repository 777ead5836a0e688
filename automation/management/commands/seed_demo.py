import json

from django.core.management.base import BaseCommand

from automation.demo import seed_demo


class Command(BaseCommand):
    help = "Create the demo account and its simulation bot on the shipped EUR/USD candles. Safe to run twice."

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset-password", action="store_true", help="Give the demo account a new password."
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, reset_password=False, **options):
        result = seed_demo(reset_password=reset_password)
        if options["json"]:
            data = {"email": result.email, "bot_id": result.bot.pk, "password": result.password}
            self.stdout.write(json.dumps(data))
            return
        self.stdout.write(f"Demo bot “{result.bot.name}” on {result.candles} stored EUR/USD 1h candles.")
        if result.password:
            self.stdout.write(self.style.SUCCESS(f"Demo login: {result.email}  password: {result.password}"))
        else:
            self.stdout.write(
                f"Demo login: {result.email} (password unchanged; "
                "`python manage.py seed_demo --reset-password` sets a new one)"
            )
