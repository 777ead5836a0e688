"""Personas, as in healthchecks' tests: Alice owns things; Charlie is another user who must never see them."""

import pytest
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache

from tests.factories import PASSWORD, BotFactory, ExchangeAccountFactory, UserFactory, two_factor_device


@pytest.fixture(autouse=True)
def _fresh_cache(request, django_db_blocker):
    """The throttles count in the shared cache. In the database's (the default), a test in a transaction
    rolls its counts back, but one that commits (transactional_db, live_server) would pass them on to the
    next test; Redis (CACHE_URL) rolls nothing back. So the cache is emptied whenever it would carry over."""
    in_database = isinstance(caches["default"], DatabaseCache)
    committed = bool({"transactional_db", "live_server"} & set(request.fixturenames))
    if not in_database:
        caches["default"].clear()
    yield
    if committed or not in_database:
        with django_db_blocker.unblock():
            caches["default"].clear()


@pytest.fixture(autouse=True)
def _fresh_costs():
    """A market's costs are read once a minute per process (trades.brokers.simulation), what exchanges
    said their fees are is remembered (market.costs), and a market's candles, indicators and source are
    kept a minute (automation.shared_reads): each test reads its own markets' afresh."""
    from automation import shared_reads
    from market import costs
    from trades.brokers import simulation

    simulation._cached.clear()
    costs._exchange_fees.clear()
    shared_reads.clear()


@pytest.fixture
def eager_tasks():
    """A task sent on commit (run-now's cycle, a backtest) runs at once, in this process (the live server's
    thread), on the test database, instead of waiting for a worker."""
    from tradingai.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


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
