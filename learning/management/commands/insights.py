import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from automation.models import Bot
from learning.insights import compute_insights


class Command(BaseCommand):
    help = "Print what a user's analyses and trades say so far, optionally for one of their bots."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, metavar="EMAIL")
        parser.add_argument("--bot", type=int, metavar="ID", help="one of the user's bots")
        parser.add_argument("--json", action="store_true", help="one JSON object, every figure with its n")

    def handle(self, *args, **options):
        user = User.objects.filter(email__iexact=options["user"]).first()
        if user is None:
            raise CommandError(f"no user with the e-mail {options['user']}")
        bot = None
        if options["bot"] is not None:
            # Another user's bot is as unknown as a missing one.
            bot = Bot.objects.filter(owner=user, pk=options["bot"]).first()
            if bot is None:
                raise CommandError(f"{user.email} has no bot {options['bot']}")
        insights = compute_insights(user, bot=bot)
        if options["json"]:
            self.stdout.write(json.dumps(insights, indent=2))
            return
        self.stdout.write(render(insights, f"{user.email}" + (f", bot {bot.pk} ({bot.name})" if bot else "")))


def render(insights: dict, title: str) -> str:
    def figure(row: dict) -> str:
        if not row["n"]:
            return "n=0"
        interval = f"{row['low'] * 100:.0f}-{row['high'] * 100:.0f}%"
        return f"{row['rate'] * 100:5.1f}% (n={row['n']}, 95% CI {interval})"

    lines = [
        f"Insights for {title}",
        f"  analyses: {insights['total_analyses']}, resolved: {insights['resolved']}",
        f"  accuracy: {figure(insights['accuracy'])}",
        f"    traded: {figure(insights['accuracy_traded']['traded'])}",
        f"    untraded: {figure(insights['accuracy_traded']['untraded'])}",
    ]
    for dimension in ("confidence", "timeframe", "sentiment", "symbol", "regime"):
        lines.append(f"  by {dimension}:")
        lines += [f"    {row['group'] or '?':<16} {figure(row)}" for row in insights[f"by_{dimension}"]]
    lines.append("  calibration (stated confidence -> realised hit rate):")
    lines += [
        f"    {row['bucket']:<8} said {row['mean_confidence']:5.1f}%, right {figure(row)}"
        for row in insights["calibration"]
    ]
    brier = insights["brier"]
    lines.append(f"  Brier score: {brier['score'] if brier['score'] is not None else 'n/a'} (n={brier['n']})")
    trades = insights["trades"]
    lines.append(
        f"  trades: win rate {figure(trades['win_rate'])}, expectancy {trades['expectancy_pct']}% "
        f"({trades['expectancy_r']} R), profit factor {trades['profit_factor']}"
    )
    for name in ("best_timeframe", "worst_timeframe"):
        row = insights[name]
        shown = f"{row['group']} {figure(row)}" if row else f"withheld (needs n >= {insights['min_samples']})"
        lines.append(f"  {name.replace('_', ' ')}: {shown}")
    lines.append("  common failures:" + ("" if insights["failures"] else " none with enough samples"))
    lines += [f"    - {failure['text']}" for failure in insights["failures"]]
    lines.append("  recommendations:" + ("" if insights["recommendations"] else " none with enough samples"))
    lines += [f"    - {item['text']}" for item in insights["recommendations"]]
    return "\n".join(lines)
