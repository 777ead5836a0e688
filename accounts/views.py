from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.db.models import ProtectedError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .forms import ExchangeAccountForm, SignUpForm
from .models import ExchangeAccount


def signup(request):
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome to TradingAI. Create your first bot to get started.")
        return redirect("dashboard")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def exchange_accounts(request):
    form = ExchangeAccountForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        account = form.save()
        messages.success(request, f"Exchange account “{account.label}” saved. Its keys are stored encrypted.")
        return redirect("exchange_accounts")
    accounts = ExchangeAccount.objects.filter(owner=request.user).order_by("label")
    return render(request, "accounts/exchange_accounts.html", {"form": form, "accounts": accounts})


@login_required
@require_POST
def exchange_account_delete(request, pk):
    account = get_object_or_404(ExchangeAccount, pk=pk, owner=request.user)
    try:
        account.delete()
    except ProtectedError:
        messages.error(request, f"“{account.label}” is used by a bot; change the bot's account first.")
    else:
        messages.success(request, f"Exchange account “{account.label}” deleted.")
    return redirect("exchange_accounts")
