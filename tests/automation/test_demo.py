from django.core.management import call_command

from accounts.models import User
from automation.models import Bot
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
