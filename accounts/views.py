from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, ProtectedError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.pages import filtered_page

from . import services
from .forms import ApiTokenForm, AuditFilterForm, ExchangeAccountForm, ModelConnectionForm, TimeZoneForm
from .models import ApiToken, AuditEvent, ExchangeAccount, ModelConnection, User
from .quotas import saved_within_quota
from .two_factor import has_two_factor


@login_required
def settings_page(request):
    """The account at a glance, with a way to each of its settings."""
    user = request.user
    time_zone_form = TimeZoneForm(request.POST or None, instance=user)
    if request.method == "POST" and time_zone_form.is_valid():
        time_zone_form.save()
        messages.success(request, f"Times are now shown in {user.time_zone.replace('_', ' ')}.")
        return redirect("settings")
    # Bots are read through the user's relation: automation sits above accounts (docs/architecture.md).
    context = {
        "accounts": ExchangeAccount.objects.filter(owner=user).order_by("label"),
        "tokens": ApiToken.objects.filter(user=user),
        "connections": ModelConnection.objects.filter(owner=user).order_by("label"),
        "running_bots": user.bots.filter(status=user.bots.model.Status.RUNNING).count(),
        "two_factor": has_two_factor(user),
        "time_zone_form": time_zone_form,
    }
    return render(request, "accounts/settings.html", context)


@login_required
@require_POST
def intro_dismiss(request):
    """The dashboard's first-visit card, hidden for good."""
    User.objects.filter(pk=request.user.pk).update(intro_dismissed_at=timezone.now())
    return redirect("dashboard")


@login_required
def exchange_accounts(request):
    form = ExchangeAccountForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid() and (account := saved_within_quota(form, form.save)):
        messages.success(request, f"Exchange account “{account.label}” saved. Its keys are stored encrypted.")
        if account.key_note:
            messages.warning(request, account.key_note)
        return redirect("exchange_accounts")
    accounts = ExchangeAccount.objects.filter(owner=request.user).order_by("label")
    return render(request, "accounts/exchange_accounts.html", {"form": form, "accounts": accounts})


@login_required
@require_POST
def exchange_account_delete(request, pk):
    account = get_object_or_404(ExchangeAccount, pk=pk, owner=request.user)
    try:
        services.exchange_account_delete(account, actor=request.user)
    except ProtectedError:
        messages.error(request, f"“{account.label}” is used by a bot; change the bot's account first.")
    else:
        messages.success(request, f"Exchange account “{account.label}” deleted.")
    return redirect("exchange_accounts")


@login_required
def model_connections(request):
    """The user's own model servers, and a form to add one."""
    form = ModelConnectionForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid() and (connection := saved_within_quota(form, form.save)):
        messages.success(
            request, f"Model connection “{connection.label}” saved. Its key is stored encrypted."
        )
        return redirect("model_connections")
    connections = ModelConnection.objects.filter(owner=request.user).order_by("label")
    # Bots are read through the user's relation: automation sits above accounts (docs/architecture.md).
    used = dict(
        request.user.bots.filter(model_connection__isnull=False)
        .values_list("model_connection")
        .annotate(n=Count("pk"))
    )
    rows = [(connection, used.get(connection.pk, 0)) for connection in connections]
    context = {"form": form, "rows": rows, "allow_private": settings.ALLOW_PRIVATE_MODEL_SERVERS}
    return render(request, "accounts/model_connections.html", context)


@login_required
def model_connection_edit(request, pk):
    connection = get_object_or_404(ModelConnection, pk=pk, owner=request.user)
    form = ModelConnectionForm(request.POST or None, instance=connection, owner=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Model connection “{connection.label}” saved.")
        return redirect("model_connections")
    return render(request, "accounts/model_connection_edit.html", {"form": form, "connection": connection})


@login_required
@require_POST
def model_connection_delete(request, pk):
    connection = get_object_or_404(ModelConnection, pk=pk, owner=request.user)
    try:
        connection.delete()
    except ProtectedError:
        messages.error(request, f"“{connection.label}” is used by a bot; choose another model for it first.")
    else:
        messages.success(request, f"Model connection “{connection.label}” deleted.")
    return redirect("model_connections")


@login_required
def audit_log(request):
    """What was done to the account's live trading, by whom and when, newest first."""
    form = AuditFilterForm(request.GET or None)
    events = AuditEvent.objects.filter(user=request.user).order_by("-created_at", "-pk")
    return render(request, "accounts/audit_log.html", filtered_page(request, form, events))


@login_required
def api_tokens(request):
    """Create and revoke API tokens. A new token is shown on the answer to its creation, and never again:
    only its hash is stored."""
    form = ApiTokenForm(request.POST or None)
    issued = None
    if request.method == "POST" and form.is_valid():
        made = saved_within_quota(form, lambda: ApiToken.issue(request.user, form.cleaned_data["name"]))
        if made:
            _, issued = made
            form = ApiTokenForm()
    tokens = ApiToken.objects.filter(user=request.user)
    return render(request, "accounts/api_tokens.html", {"form": form, "tokens": tokens, "issued": issued})


@login_required
@require_POST
def api_token_revoke(request, pk):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    token.delete()
    messages.success(request, f"Token “{token.name}” revoked: requests with it are refused from now on.")
    return redirect("api_tokens")
