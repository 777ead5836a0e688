from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render

from .forms import BotForm
from .models import Bot
from .selectors import worker_alive


@login_required
def dashboard(request):
    bots = Bot.objects.filter(owner=request.user).order_by("name")
    return render(request, "automation/dashboard.html", {"bots": bots, "worker_alive": worker_alive()})


@login_required
def bot_create(request):
    form = BotForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        bot = form.save()
        messages.success(request, f"Bot “{bot.name}” created. Start it when you are ready.")
        return redirect(bot)
    return render(request, "automation/bot_form.html", {"form": form})


@login_required
def bot_edit(request, pk):
    bot = get_object_or_404(Bot, pk=pk, owner=request.user)
    form = BotForm(request.POST or None, instance=bot, owner=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Bot “{bot.name}” saved.")
        return redirect(bot)
    return render(request, "automation/bot_form.html", {"form": form, "bot": bot})


@login_required
def bot_detail(request, pk):
    bot = get_object_or_404(Bot.objects.select_related("exchange_account"), pk=pk, owner=request.user)
    return render(
        request,
        "automation/bot_detail.html",
        {"bot": bot, "sessions": bot.sessions.all()[:20], "runs": bot.runs.all()[:50]},
    )
