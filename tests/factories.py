import factory

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
