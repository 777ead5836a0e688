"""The weekly learning summary: for each user with a channel and the switch on, what their bots did in the
last seven days (trades closed, won and lost, net P&L per quote currency, analyses made) and what each bot's
latest insights say of its accuracy, with the sample size and the 95 % interval learning computed it with
(learning.insights), so that the summary claims nothing the insights page would not."""

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum
from django.utils import timezone

from core.values import Outcome
from learning.insights import latest
from learning.models import AILearningData
from trades.models import Trade

from .events import Event
from .models import Channel
from .services import is_on, notify

WEEK = timedelta(days=7)


def send_weekly_summaries(now=None) -> int:
    """Send each summary once per ISO week (the notification's key): a second run in the same week sends
    nothing. Returns how many were sent."""
    now = now or timezone.now()
    year, week, _ = now.isocalendar()
    users = (
        get_user_model().objects.filter(is_active=True, pk__in=Channel.objects.values("owner")).order_by("pk")
    )
    sent = 0
    for user in users:
        if not is_on(user, Event.WEEKLY_SUMMARY):
            continue
        text, data = summary_of(user, now)
        if notify(
            user, Event.WEEKLY_SUMMARY, "Your week in TradingAI", text, data, key=f"{year}-W{week:02d}"
        ):
            sent += 1
    return sent


def summary_of(user, now) -> tuple[str, dict]:
    since = now - WEEK
    closed = Trade.objects.filter(
        owner=user, status=Trade.Status.CLOSED, closed_at__gte=since, closed_at__lt=now
    )
    counts = closed.aggregate(
        n=Count("pk"),
        won=Count("pk", filter=Q(outcome=Outcome.WIN)),
        lost=Count("pk", filter=Q(outcome=Outcome.LOSS)),
    )
    pnl = defaultdict(Decimal)  # by quote currency: EUR/USD's P&L is in USD
    for row in closed.order_by().values("symbol").annotate(total=Sum("pnl")):
        pnl[row["symbol"].split("/")[-1]] += row["total"] or 0
    analyses = AILearningData.objects.filter(user=user, created_at__gte=since, created_at__lt=now).count()
    lines = [
        f"Last 7 days: {counts['n']} trades closed ({counts['won']} won, {counts['lost']} lost), "
        f"{analyses} analyses made.",
    ]
    if pnl:
        lines.append("Net P&L: " + ", ".join(f"{total:+.2f} {quote}" for quote, total in sorted(pnl.items())))
    bots = []
    for bot in user.bots.order_by("name"):
        insights = latest(user, bot=bot)
        accuracy = insights["accuracy"] if insights else None
        if not accuracy or not accuracy["n"]:
            lines.append(f"“{bot.name}”: no resolved calls yet.")
            continue
        lines.append(
            f"“{bot.name}”: accuracy {accuracy['rate'] * 100:.0f} % over {accuracy['n']} resolved calls "
            f"(95 % interval {accuracy['low'] * 100:.0f}-{accuracy['high'] * 100:.0f} %)."
        )
        bots.append({"bot": bot.pk, "name": bot.name, "accuracy": accuracy})
    data = {
        "since": since.isoformat(),
        "trades_closed": counts["n"],
        "won": counts["won"],
        "lost": counts["lost"],
        "pnl": {quote: str(total) for quote, total in pnl.items()},
        "analyses": analyses,
        "bots": bots,
    }
    return "\n".join(lines), data
