from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.pages import PAGE_SIZE

from . import services
from .forms import ChannelForm, SwitchesForm
from .models import Channel, Delivery


@login_required
def notification_settings(request):
    """The user's channels (add, test, delete) and a switch per event."""
    form = ChannelForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        channel = form.save()
        messages.success(request, f"Channel “{channel.label}” added. Send it a test message to check it.")
        if form.made_key:
            messages.info(
                request,
                f"The signing key of “{channel.label}” is {form.made_key} — copy it now: it is not shown "
                "again.",
            )
        return redirect("notifications")
    switches = SwitchesForm(initial=services.switches_of(request.user))
    return render(request, "notifications/settings.html", _context(request, form, switches))


@login_required
@require_POST
def notification_switches(request):
    switches = SwitchesForm(request.POST)
    if switches.is_valid():  # unticked boxes are False: the form cannot be invalid, but is read through it
        services.switches_set(request.user, switches.cleaned_data)
        messages.success(request, "Notification switches saved.")
    return redirect("notifications")


@login_required
@require_POST
def channel_test(request, pk):
    channel = get_object_or_404(Channel, pk=pk, owner=request.user)
    services.send_test_message(channel)
    messages.success(
        request, f"A test message to “{channel.label}” is on its way: the delivery log shows how it went."
    )
    return redirect("deliveries")


@login_required
@require_POST
def channel_delete(request, pk):
    channel = get_object_or_404(Channel, pk=pk, owner=request.user)
    channel.delete()
    messages.success(request, f"Channel “{channel.label}” deleted.")
    return redirect("notifications")


@login_required
def deliveries(request):
    items = Delivery.objects.filter(user=request.user).select_related("notification")
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "notifications/deliveries.html", {"page": page, "query": ""})


def _context(request, form, switches) -> dict:
    return {
        "form": form,
        "switches": switches,
        "channels": Channel.objects.filter(owner=request.user),
    }
