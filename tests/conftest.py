"""Personas, as in healthchecks' tests: Alice owns things; Charlie is another user who must never see them."""

import pytest

from tests.factories import PASSWORD, BotFactory, ExchangeAccountFactory, UserFactory


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
def alice_bot(alice):
    return BotFactory(owner=alice, name="Alice's BTC bot")


@pytest.fixture
def alice_account(alice):
    return ExchangeAccountFactory(owner=alice, label="Alice on Binance", exchange="binance")


@pytest.fixture
def password():
    return PASSWORD
