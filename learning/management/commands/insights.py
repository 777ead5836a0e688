import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from learning.counters import rebuild
from learning.insights import as_text, compute_insights


class Command(BaseCommand):
    help = "Print what a user's analyses and trades say so far, optionally for one of their bots."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, metavar="EMAIL")
        parser.add_argument("--bot", type=int, metavar="ID", help="one of the user's bots")
        parser.add_argument("--json", action="store_true", help="one JSON object, every figure with its n")
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="first recompute the user's running totals from the analyses",
        )

    def handle(self, *args, **options):
        user = User.objects.filter(email__iexact=options["user"]).first()
        if user is None:
            raise CommandError(f"no user with the e-mail {options['user']}")
        bot = None
        if options["bot"] is not None:
            # Another user's bot is as unknown as a missing one.
            bot = user.bots.filter(pk=options["bot"]).first()
            if bot is None:
                raise CommandError(f"{user.email} has no bot {options['bot']}")
        if options["rebuild"]:
            rebuild(user)
        insights = compute_insights(user, bot=bot)
        if options["json"]:
            self.stdout.write(json.dumps(insights, indent=2))
            return
        self.stdout.write(
            as_text(insights, f"{user.email}" + (f", bot {bot.pk} ({bot.name})" if bot else ""))
        )
