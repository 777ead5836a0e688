from django.db.models import Count, OuterRef, Q, Subquery, Sum

from core.values import Outcome
from trades.models import Trade

from .models import Bot, CycleRun


def dashboard_bots(user):
    """The user's bots with what the dashboard shows of each: the last run, the open trade, the net P&L and
    the win rate of its closed trades. One query, however many bots."""
    last_run = CycleRun.objects.filter(bot=OuterRef("pk")).order_by("-slot")
    open_trade = Trade.objects.filter(bot=OuterRef("pk"), status=Trade.Status.OPEN).order_by("-created_at")
    closed = Q(trades__status=Trade.Status.CLOSED)
    return (
        Bot.objects.filter(owner=user)
        .annotate(
            last_slot=Subquery(last_run.values("slot")[:1]),
            last_status=Subquery(last_run.values("status")[:1]),
            open_trade_id=Subquery(open_trade.values("pk")[:1]),
            open_side=Subquery(open_trade.values("side")[:1]),
            open_price=Subquery(open_trade.values("price")[:1]),
            pnl=Sum("trades__pnl", filter=closed),
            closed_count=Count("trades", filter=closed),
            wins=Count("trades", filter=closed & Q(trades__outcome=Outcome.WIN)),
        )
        .order_by("name")
    )


def recent_failures(user, limit: int = 10):
    """The user's latest failed runs, with the step that failed and why."""
    return (
        CycleRun.objects.filter(bot__owner=user, status=CycleRun.Status.FAILED)
        .select_related("bot")
        .order_by("-created_at")[:limit]
    )
