import io
from pathlib import Path

import factory
from django.core.management import call_command
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import crypto
from accounts.models import ExchangeAccount, User
from automation.models import Bot

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = factory.django.Password(PASSWORD)


def two_factor_device(user) -> TOTPDevice:
    """A confirmed authenticator app for `user` (django-otp): live trading and the admin need one."""
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def force_login_verified(client, user) -> None:
    """Sign `client` in as `user` having given the second factor too, as the admin requires of staff."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or two_factor_device(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


class ExchangeAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExchangeAccount

    owner = factory.SubFactory(UserFactory)
    label = factory.Sequence(lambda n: f"account {n}")
    exchange = "binance"

    class Params:
        api_key = "AKIAPLAINKEY0000123456"
        secret = "PLAIN-SECRET-never-to-be-seen-9f8e7d"

    api_key_encrypted = factory.LazyAttribute(lambda o: crypto.encrypt(o.api_key))
    secret_encrypted = factory.LazyAttribute(lambda o: crypto.encrypt(o.secret))
    api_key_hint = factory.LazyAttribute(lambda o: o.api_key[-4:])


class BotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bot
        skip_postgeneration_save = True

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"bot {n}")
    exchange = "binance"
    symbol = "BTC/USDT"
    timeframe = "1h"


EURUSD_CSV = Path(__file__).resolve().parent.parent / "fixtures" / "EURUSD_1h.csv"


def import_eurusd() -> None:
    """The shipped EUR/USD hourly candles, as the demo's stored market `sample`."""
    call_command(
        "import_candles",
        str(EURUSD_CSV),
        exchange="sample",
        symbol="EUR/USD",
        timeframe="1h",
        stdout=io.StringIO(),
    )
