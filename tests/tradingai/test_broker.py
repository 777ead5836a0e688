"""The embedded default's broker (tradingai/broker.py): a message is never seen by a worker before it is
written whole (celery/kombu#1551, which crashed a worker in CI)."""

import contextlib
import os
from queue import Empty

import pytest
from kombu import Connection

from tradingai import broker
from tradingai.celery import app
from tradingai.settings.base import filesystem_broker_options


@pytest.fixture
def channel(tmp_path):
    options = filesystem_broker_options(tmp_path)
    with Connection(transport=broker.Transport, transport_options=options) as conn:
        yield conn.default_channel


def test_a_message_is_invisible_to_the_reader_until_it_is_written_whole(channel, monkeypatch):
    seen_while_writing, looked = [], []
    replace = os.replace

    def replace_after_looking(partial, final):
        # The moment kombu's own transport lost: the file exists, the reader lists the folder.
        assert os.path.getsize(partial) > 0
        looked.append(final)
        with contextlib.suppress(Empty):
            seen_while_writing.append(channel._get("default"))
        replace(partial, final)

    monkeypatch.setattr(broker.os, "replace", replace_after_looking)
    channel._put("default", {"body": "a task", "n": 1})
    assert len(looked) == 1 and seen_while_writing == []
    assert channel._get("default") == {"body": "a task", "n": 1}
    with pytest.raises(Empty):
        channel._get("default")


def test_the_app_sends_through_it_when_the_broker_is_the_filesystem(settings):
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        pytest.skip("the suite runs on another broker (CELERY_BROKER_URL)")
    with app.connection_for_write() as conn:
        assert isinstance(conn.default_channel, broker.Channel)


def test_another_broker_url_keeps_its_own_transport():
    with Connection("redis://127.0.0.1:1/0") as conn:
        assert conn.transport.driver_type == "redis"
    with Connection("filesystem://") as conn:
        assert isinstance(conn.transport, broker.Transport)
