"""Personas, as in healthchecks' tests: Alice owns things; Charlie is another user who must never see them."""

import pytest
from django.core.cache import cache

from tests.factories import PASSWORD, BotFactory, ExchangeAccountFactory, UserFactory, two_factor_device


@pytest.fixture(autouse=True)
def _empty_cache_after_committed_tests(request, django_db_blocker):
    """The throttles count in the database cache. A test in a transaction rolls its counts back; one that
    commits (transactional_db, live_server) would pass them on to the next test, so they are emptied."""
    yield
    if {"transactional_db", "live_server"} & set(request.fixturenames):
        with django_db_blocker.unblock():
            cache.clear()


@pytest.fixture
def alice(db):
    return UserFactory(email="alice@example.com")


@pytest.fixture
def charlie(db):
    return UserFactory(email="charlie@example.com")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def alice_two_factor(alice):
    """Alice's authenticator app, confirmed: switching a bot to live trading needs it."""
    return two_factor_device(alice)


@pytest.fixture
def alice_bot(alice):
    return BotFactory(owner=alice, name="Alice's BTC bot")


@pytest.fixture
def alice_account(alice):
    return ExchangeAccountFactory(owner=alice, label="Alice on Binance", exchange="binance")


@pytest.fixture
def password():
    return PASSWORD
