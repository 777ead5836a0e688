import pytest
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from accounts.models import User
from automation.demo import (
    HISTORY_MARGIN,
    SAMPLE_MARKET,
    HistoryBusyError,
    history_in_background,
    history_progress,
    seed_demo,
)
from automation.models import AutomationSession, Bot, CycleRun
from automation.replay import Progress
from automation.services import bot_stop
from automation.tasks import seed_demo_history_task
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


def test_seed_demo_in_the_background_queues_the_history_and_the_worker_replays_it_then_starts_the_bot(
    db, capsys, monkeypatch
):
    sent = []
    monkeypatch.setattr(seed_demo_history_task, "delay", lambda *args: sent.append(args))
    call_command("seed_demo", "--history", "8", "--background")
    bot = Bot.objects.get(name="EUR/USD demo")
    assert sent == [(bot.pk, 8)]
    assert "History: 8 cycle(s) left to a worker" in capsys.readouterr().out
    assert not CycleRun.objects.filter(bot=bot).exists()  # the command did not wait for them
    assert history_progress(bot) == Progress(done=0, total=8, failed=0)

    # A second task while the first holds the bot's history is turned away, and its progress left alone.
    cache.add(f"demo-history-claim:{bot.pk}", True, 60)
    with pytest.raises(HistoryBusyError):
        history_in_background(bot.pk, 8)
    assert history_progress(bot).total == 8
    cache.delete(f"demo-history-claim:{bot.pk}")

    seen = []
    monkeypatch.setattr(cache, "set", _recording(cache.set, seen))
    assert history_in_background(bot.pk, 8) == 8
    assert [v["done"] for k, v in seen if k.startswith("demo-history:")] == [5, 8]  # chunk after chunk
    assert history_progress(bot) is None
    bot.refresh_from_db()
    assert bot.status == Bot.Status.RUNNING  # on the moving sample market, once its history is there
    assert AutomationSession.objects.filter(bot=bot, stopped_at__isnull=True).count() == 1

    # Stopped by its user, the bot stays stopped when make run starts again: nothing is left to replay.
    bot_stop(bot)
    sent.clear()
    call_command("seed_demo", "--history", "8", "--background")
    assert sent == [] and "had all run before" in capsys.readouterr().out
    assert history_in_background(bot.pk, 8) == 0
    assert Bot.objects.get(pk=bot.pk).status == Bot.Status.STOPPED


def test_background_needs_a_history(db):
    with pytest.raises(CommandError, match="--background needs --history N"):
        call_command("seed_demo", "--background")


def _recording(set_, seen):
    def recording(key, value, *args, **kwargs):
        seen.append((key, value))
        return set_(key, value, *args, **kwargs)

    return recording
