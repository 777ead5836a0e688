from django.core.files.storage import default_storage
from django.core.management import call_command

from accounts.models import User
from automation.demo import HISTORY_MARGIN, SAMPLE_MARKET, seed_demo
from automation.models import AutomationSession, Bot, CycleRun
from learning.models import AILearningData
from market.models import Candle


def test_seed_demo_creates_the_demo_account_once(db, capsys):
    call_command("seed_demo")
    first = capsys.readouterr().out
    assert "password: " in first
    password = first.rsplit("password: ", 1)[1].split()[0]
    user = User.objects.get(email="demo@tradingai.local")
    assert user.check_password(password)
    bot = Bot.objects.get(owner=user)
    assert (bot.exchange, bot.symbol, bot.timeframe, bot.mode) == ("sample", "EUR/USD", "1h", "SIMULATION")
    assert Candle.objects.filter(exchange="sample", symbol="EUR/USD", timeframe="1h").count() == 5000

    call_command("seed_demo")
    second = capsys.readouterr().out
    assert "password unchanged" in second
    user.refresh_from_db()
    assert user.check_password(password)
    assert (User.objects.count(), Bot.objects.count(), Candle.objects.count()) == (1, 1, 5000)


def test_seed_demo_can_reset_the_password(db, capsys):
    call_command("seed_demo")
    call_command("seed_demo", reset_password=True)
    new = capsys.readouterr().out.rsplit("password: ", 1)[1].split()[0]
    assert User.objects.get().check_password(new)


def test_seed_demo_json(db, capsys):
    import json

    call_command("seed_demo", "--json")
    first = json.loads(capsys.readouterr().out)
    assert first["email"] == "demo@tradingai.local"
    assert first["bot_id"] == Bot.objects.get().pk
    assert User.objects.get().check_password(first["password"])
    call_command("seed_demo", "--json")
    again = json.loads(capsys.readouterr().out)
    assert (again["bot_id"], again["password"]) == (first["bot_id"], None)


def test_seed_demo_history_runs_the_bots_cycles_once(db, capsys):
    call_command("seed_demo", "--history", "30")
    out, err = capsys.readouterr()
    assert "History: 30 new cycle(s)" in out
    assert err.strip().endswith("history: 30/30 cycles")
    bot = Bot.objects.get()
    runs = CycleRun.objects.filter(bot=bot)
    assert [run.status for run in runs] == [CycleRun.Status.SUCCEEDED] * 30
    last_candle = Candle.objects.filter(**SAMPLE_MARKET).latest("open_time").open_time
    assert max(run.slot for run in runs) <= last_candle - HISTORY_MARGIN
    analyses = AILearningData.objects.filter(bot=bot)
    assert analyses.count() == 30
    # Each with the chart the analyst saw, rendered and stored.
    assert all(a.screenshot and default_storage.exists(a.screenshot.name) for a in analyses)
    # The bot ran in a session of its own, now closed, and is stopped again as it was.
    [session] = AutomationSession.objects.filter(bot=bot)
    assert session.stopped_at and set(analyses.values_list("session", flat=True)) == {session.pk}
    assert bot.status == Bot.Status.STOPPED

    call_command("seed_demo", "--history", "30")
    assert "History: 0 new cycle(s)" in capsys.readouterr().out
    assert runs.count() == 30
    assert AutomationSession.objects.filter(bot=bot).count() == 1


def test_seed_demo_history_leaves_a_running_bot_running_in_its_session(db):
    bot = seed_demo().bot
    Bot.objects.filter(pk=bot.pk).update(status=Bot.Status.RUNNING)
    session = AutomationSession.objects.create(bot=bot)

    assert seed_demo(history=3).cycles == 3

    bot.refresh_from_db()
    session.refresh_from_db()
    assert bot.status == Bot.Status.RUNNING and session.is_open
    assert set(AILearningData.objects.values_list("session", flat=True)) == {session.pk}
