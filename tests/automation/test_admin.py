import pytest
from django.contrib import admin
from django.urls import reverse

from automation.models import AutomationSession, Bot
from tests.factories import BotFactory, UserFactory


@pytest.fixture
def operator_client(client, db):
    client.force_login(UserFactory(email="ops@example.com", is_staff=True, is_superuser=True))
    return client


def test_every_model_is_in_the_admin(db):
    from django.apps import apps

    ours = [
        m
        for m in apps.get_models()
        if m._meta.app_label in {"accounts", "automation", "learning", "trades", "market"}
    ]
    missing = [m.__name__ for m in ours if m not in admin.site._registry]
    assert not missing


def test_every_admin_changelist_renders_with_search_and_filters(operator_client, alice_bot):
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        assert operator_client.get(url).status_code == 200, url
        if model_admin.search_fields:
            assert operator_client.get(url, {"q": "alice"}).status_code == 200, url


def test_admin_change_pages_render(operator_client, alice_bot):
    for model in (Bot,):
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[alice_bot.pk])
        assert operator_client.get(url).status_code == 200


def test_pause_action_pauses_running_bots_and_closes_their_sessions(operator_client, alice):
    running = BotFactory(owner=alice, status=Bot.Status.RUNNING)
    session = AutomationSession.objects.create(bot=running)
    stopped = BotFactory(owner=alice, status=Bot.Status.STOPPED)
    response = operator_client.post(
        reverse("admin:automation_bot_changelist"),
        {"action": "pause_bots", "_selected_action": [running.pk, stopped.pk]},
        follow=True,
    )
    assert "Paused 1 bot(s); 1 were not running." in response.content.decode()
    running.refresh_from_db()
    stopped.refresh_from_db()
    session.refresh_from_db()
    assert (running.status, stopped.status) == (Bot.Status.PAUSED, Bot.Status.STOPPED)
    assert session.stopped_at is not None
    assert session.stop_reason == "paused by operator ops@example.com"
