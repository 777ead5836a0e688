from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.quotas import saved_within_quota
from learning import plots
from learning.insights import stat
from learning.models import AILearningData
from learning.policy import describe_policy, pin
from trades.models import Trade

from .backtest_start import backtest_start
from .backtests import backtest_progress, report_figures
from .demo import history_progress
from .evaluation import report_plots
from .forms import BacktestForm, BotForm, PolicyPinForm
from .health import background_down
from .models import Backtest, Bot
from .price_chart import bot_chart, trade_chart
from .quotas import notices as quota_notices
from .run_now import bot_run_now
from .selectors import dashboard_bots, recent_failures
from .services import BotActionError, QueueUnavailableError, bot_start, bot_stop

RUNS_PER_PAGE = 25


@login_required
def dashboard(request):
    bots = list(dashboard_bots(request.user))
    for bot in bots:
        bot.win_rate = stat(bot.wins, bot.closed_count)
        bot.history = history_progress(bot)
    context = {
        "bots": bots,
        "intro": request.user.intro_dismissed_at is None,
        "background_down": background_down(),
        "equity": plots.equity(request.user) if bots else None,
        "failures": recent_failures(request.user),
        "quota_notices": quota_notices(request.user, timezone.now()),
    }
    return render(request, "automation/dashboard.html", context)


@login_required
def bot_create(request):
    form = BotForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid() and (bot := saved_within_quota(form, form.save)):
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
    return _bot_page(request, bot, PolicyPinForm(initial=describe_policy(bot)["pins"]))


def _bot_page(request, bot, pin_form):
    context = {
        "bot": bot,
        "sessions": bot.sessions.all()[:20],
        "page": Paginator(bot.runs.select_related("analysis"), RUNS_PER_PAGE).get_page(
            request.GET.get("page")
        ),
        "policy": describe_policy(bot),
        "pin_form": pin_form,
    }
    return render(request, "automation/bot_detail.html", context)


@login_required
@require_POST
def bot_policy_pin(request, pk):
    bot = get_object_or_404(Bot, pk=pk, owner=request.user)
    form = PolicyPinForm(request.POST)
    if not form.is_valid():
        return _bot_page(request, bot, form)
    pin(bot, **form.cleaned_data)  # an empty field is None: unpinned
    said = ", ".join(
        f"{name.replace('_', ' ')} {said_pin(value)}"
        for name, value in form.cleaned_data.items()
        if value is not None
    )
    messages.success(request, f"Pinned: {said or 'nothing'}. The rest follows what the bot learns.")
    return redirect(bot)


def said_pin(value) -> str:
    if isinstance(value, list):  # avoid-conditions
        return "; ".join(f"{c['field']} {c['value']}" for c in value)
    return f"{value:g}"


@login_required
def analysis_chart(request, pk):
    """The chart the AI saw, for the analysis's owner only: charts are never served as public media."""
    analysis = get_object_or_404(AILearningData, pk=pk, user=request.user)
    if not analysis.screenshot:
        raise Http404("This analysis has no chart.")
    try:
        image = analysis.screenshot.open("rb")
    except FileNotFoundError:
        raise Http404("The chart file is missing.") from None
    response = FileResponse(image, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
def bot_price_chart(request, pk):
    """The bot page's price chart as Plotly figure data (automation/price_chart.py), fetched by
    static/js/price_chart.js so that reading the candles does not hold the page up."""
    bot = get_object_or_404(Bot, pk=pk, owner=request.user)
    return JsonResponse(bot_chart(bot))


@login_required
def trade_price_chart(request, pk):
    """The trade page's price chart: the trade's stretch of its market. Here rather than in trades/, which
    is below the analyses the chart shows too (docs/architecture.md)."""
    trade = get_object_or_404(Trade.objects.select_related("bot"), pk=pk, owner=request.user)
    return JsonResponse(trade_chart(trade))


@login_required
@require_POST
def bot_action(request, pk, action):
    bot = get_object_or_404(
        Bot.objects.select_related("owner", "exchange_account"), pk=pk, owner=request.user
    )
    try:
        if action == "start":
            bot_start(bot, actor=request.user)
            messages.success(request, f"“{bot.name}” is running; its first cycle is due within the period.")
        elif action == "stop":
            bot_stop(bot, actor=request.user)
            messages.success(request, f"“{bot.name}” stopped.")
        else:
            slot = bot_run_now(bot)
            messages.success(request, f"The cycle for {slot[:16].replace('T', ' ')} UTC is on its way.")
    except BotActionError as e:
        messages.error(request, str(e))
    return redirect(bot)


@login_required
def backtest_list(request):
    backtests = Backtest.objects.filter(owner=request.user)
    page = Paginator(backtests, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "automation/backtest_list.html", {"page": page})


@login_required
def backtest_create(request):
    form = BacktestForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            backtest = saved_within_quota(form, lambda: backtest_start(form.instance))
        except QueueUnavailableError as e:
            form.add_error(None, str(e))
            backtest = None
        if backtest:
            messages.success(request, f"The backtest of {backtest.market} is queued.")
            return redirect(backtest)
    return render(request, "automation/backtest_form.html", {"form": form})


@login_required
def backtest_detail(request, pk):
    backtest = get_object_or_404(Backtest, pk=pk, owner=request.user)
    context = {"backtest": backtest}
    if backtest.report is not None:
        figures = report_figures(backtest)
        context |= {"f": figures, "plots": report_plots(figures)}
    return render(request, "automation/backtest_detail.html", context)


@login_required
def backtest_status(request, pk):
    """What the detail page's progress bar polls (static/js/backtest.js)."""
    backtest = get_object_or_404(Backtest, pk=pk, owner=request.user)
    return JsonResponse(backtest_progress(backtest))


@login_required
def backtest_report(request, pk):
    """The report's figures as JSON, as `replay --report` writes report.json; 404 until it is done."""
    backtest = get_object_or_404(Backtest, pk=pk, owner=request.user, report__isnull=False)
    response = JsonResponse(backtest.report)
    response["Content-Disposition"] = f'attachment; filename="backtest-{backtest.pk}.json"'
    return response
