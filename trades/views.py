from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from core.pages import OwnBotFilterForm, filtered_page
from core.values import Outcome

from .models import Trade


class TradeFilterForm(OwnBotFilterForm):
    status = forms.ChoiceField(choices=[("", "Any status"), *Trade.Status.choices], required=False)
    outcome = forms.ChoiceField(choices=[("", "Any outcome"), *Outcome.choices], required=False)


@login_required
def trade_list(request):
    form = TradeFilterForm(request.GET or None, owner=request.user)
    trades = Trade.objects.filter(owner=request.user).select_related("bot").order_by("-created_at")
    return render(request, "trades/trade_list.html", filtered_page(request, form, trades))


@login_required
def trade_detail(request, pk):
    trade = get_object_or_404(Trade.objects.select_related("bot", "analysis"), pk=pk, owner=request.user)
    return render(request, "trades/trade_detail.html", {"trade": trade})
