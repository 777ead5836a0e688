from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from automation.models import Bot
from tradingai.pages import filtered_page

from .models import AILearningData, Outcome, Recommendation


class AnalysisFilterForm(forms.Form):
    bot = forms.ModelChoiceField(queryset=Bot.objects.none(), required=False, empty_label="All bots")
    recommendation = forms.ChoiceField(choices=[("", "Any call"), *Recommendation.choices], required=False)
    outcome = forms.ChoiceField(
        choices=[("", "Any outcome"), ("open", "Not known yet"), *Outcome.choices], required=False
    )

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["bot"].queryset = Bot.objects.filter(owner=owner).order_by("name")

    def filter(self, analyses):
        if not self.is_valid():
            return analyses.none()
        data = self.cleaned_data
        if data["bot"]:
            analyses = analyses.filter(bot=data["bot"])
        if data["recommendation"]:
            analyses = analyses.filter(recommendation=data["recommendation"])
        if data["outcome"] == "open":
            analyses = analyses.filter(outcome="")
        elif data["outcome"]:
            analyses = analyses.filter(outcome=data["outcome"])
        return analyses


@login_required
def analysis_list(request):
    form = AnalysisFilterForm(request.GET or None, owner=request.user)
    analyses = AILearningData.objects.filter(user=request.user).select_related("bot").order_by("-created_at")
    return render(request, "learning/analysis_list.html", filtered_page(request, form, analyses))


@login_required
def analysis_detail(request, pk):
    analysis = get_object_or_404(
        AILearningData.objects.select_related("bot", "cycle_run", "prompt_version"), pk=pk, user=request.user
    )
    trade = getattr(analysis, "trade", None)
    return render(
        request,
        "learning/analysis_detail.html",
        {"analysis": analysis, "a": analysis.analysis_data, "trade": trade},
    )
