from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import F
from django.shortcuts import get_object_or_404, render

from core.pages import OwnBotFilterForm, filtered_page

from . import plots
from .insights import compute_insights
from .models import AILearningData, Outcome, Recommendation


class AnalysisFilterForm(OwnBotFilterForm):
    recommendation = forms.ChoiceField(choices=[("", "Any call"), *Recommendation.choices], required=False)
    outcome = forms.ChoiceField(
        choices=[("", "Any outcome"), ("open", "Not known yet"), *Outcome.choices], required=False
    )

    def filter(self, analyses):
        # "Not known yet" is the blank outcome, which the exact-match filter would skip as empty.
        if self.is_valid() and self.cleaned_data["outcome"] == "open":
            self.cleaned_data["outcome"] = ""
            return super().filter(analyses).filter(outcome="")
        return super().filter(analyses)


@login_required
def analysis_list(request):
    form = AnalysisFilterForm(request.GET or None, owner=request.user)
    # By the slot each analysis was made for, not when its row was written: a replay writes a hundred
    # slots' rows in the same second. Several bots' analyses of one slot come newest first.
    analyses = (
        AILearningData.objects.filter(user=request.user)
        .select_related("bot", "cycle_run")
        .order_by(F("cycle_run__slot").desc(nulls_last=True), "-created_at", "-pk")
    )
    return render(request, "learning/analysis_list.html", filtered_page(request, form, analyses))


@login_required
def analysis_detail(request, pk):
    analysis = get_object_or_404(
        AILearningData.objects.select_related("bot", "cycle_run", "prompt_version", "model_connection"),
        pk=pk,
        user=request.user,
    )
    trade = getattr(analysis, "trade", None)
    return render(
        request,
        "learning/analysis_detail.html",
        {
            "analysis": analysis,
            "a": analysis.analysis_data,
            "trade": trade,
            "quote": analysis.symbol.partition("/")[2],  # the currency a trade's money is in
        },
    )


@login_required
def insights(request):
    """What the user's analyses and trades say so far, all bots or one: the figures of
    `compute_insights`, drawn, each with its n and interval."""
    form = OwnBotFilterForm(request.GET or None, owner=request.user)
    if form.is_bound and not form.is_valid():
        return render(request, "learning/insights.html", {"form": form, "data": None})
    data = compute_insights(request.user, bot=form.cleaned_data["bot"] if form.is_bound else None)
    figures = {
        "over_time": plots.accuracy_over_time(data["over_time"]),
        "calibration": plots.calibration(data["calibration"]),
        "by": [
            (f"by-{name}", name, plots.accuracy_by(data[f"by_{name}"]))
            for name in ("timeframe", "sentiment", "confidence", "regime")
        ],
    }
    return render(request, "learning/insights.html", {"form": form, "data": data, "plots": figures})


def help_policy(request):
    """How a bot decides whether to trade a call and how much: the policy card's explanation, in words
    (docs/learning.md has the formulas)."""
    return render(request, "learning/help_policy.html")
