"""/healthz and the dashboard's warning: the database, the broker, each queue's heartbeat and beat's tick."""

import socket
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from automation.health import BEAT, queue_heartbeat
from automation.models import Heartbeat
from tests.automation.test_celery_worker import celery_env, start, wait_for
from tradingai.celery import app as celery_app

__all__ = ["celery_env"]


def beat_all(seen_at=None, **stale):
    """Every heartbeat fresh (or seen at `seen_at`), but the ones named in `stale`, seen an hour ago."""
    now = timezone.now()
    for name in (queue_heartbeat("default"), queue_heartbeat("io"), BEAT):
        at = now - timedelta(hours=1) if name in stale.get("names", ()) else (seen_at or now)
        Heartbeat.objects.update_or_create(name=name, defaults={"seen_at": at})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.django_db
def test_healthz_is_200_when_everything_is_fresh(client):
    beat_all()
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["down"], body["database"], body["broker"]) == ("ok", [], "ok", "ok")
    assert set(body["heartbeats"]) == {"queue:default", "queue:io", "beat"}
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_names_the_io_queue_when_its_heartbeat_is_stale(client):
    beat_all(names=[queue_heartbeat("io")])
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["down"]) == ("down", ["queue:io"])
    assert body["heartbeats"]["queue:io"]["ok"] is False
    assert body["heartbeats"]["queue:io"]["age_seconds"] >= 3600


@pytest.mark.django_db
def test_healthz_names_a_queue_never_heard_of(client):
    Heartbeat.objects.create(name=BEAT, seen_at=timezone.now())
    body = client.get("/healthz").json()
    assert body["down"] == ["queue:default", "queue:io"]
    assert body["heartbeats"]["queue:io"] == {"ok": False, "age_seconds": None}


@pytest.mark.django_db
def test_healthz_names_the_broker_when_it_is_unreachable(client, monkeypatch):
    beat_all()
    closed = f"redis://127.0.0.1:{closed_port()}/0"
    monkeypatch.setattr(celery_app.conf, "broker_url", closed)
    # Celery reads CELERY_BROKER_URL from the environment before its own setting (CI's Redis run sets it).
    # Set after the setting, so that what is restored is the setting as it was, not as the variable made it.
    monkeypatch.setenv("CELERY_BROKER_URL", closed)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]
    assert "127.0.0.1" not in response.content.decode()  # the cause is logged, not told to anyone asking


@pytest.mark.django_db
def test_healthz_is_answered_over_plain_http_to_any_host_without_a_sign_in(client, settings):
    """Production redirects plain HTTP to HTTPS and refuses unknown hosts; load balancers probe by address."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["tradingai.example.com"]
    beat_all()
    response = client.get("/healthz", HTTP_HOST="10.0.0.7:8000")
    assert response.status_code == 200
    assert client.get("/accounts/login/", HTTP_HOST="tradingai.example.com").status_code == 301


def test_the_dashboard_names_the_queue_that_is_down(alice_client):
    beat_all(names=[queue_heartbeat("io")])
    page = alice_client.get(reverse("dashboard")).content.decode()
    assert "The background is down: nothing heard for a while from the io queue&#x27;s workers." in page


def test_the_dashboard_names_beat_and_every_queue_when_all_are_stale(alice_client):
    beat_all(seen_at=timezone.now() - timedelta(hours=2))
    page = alice_client.get(reverse("dashboard")).content.decode()
    assert "from the default queue&#x27;s workers, the io queue&#x27;s workers, beat (the scheduler)." in page


def test_the_dashboard_warns_of_nothing_when_all_are_fresh_or_none_ever_reported(alice_client):
    assert "The background is down" not in alice_client.get(reverse("dashboard")).content.decode()
    beat_all()
    assert "The background is down" not in alice_client.get(reverse("dashboard")).content.decode()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_healthz_follows_the_real_workers_of_each_queue(client, celery_env, tmp_path, settings):
    """Beat and a worker of the default queue only: /healthz names the io queue, and is 200 once an io worker
    (threads, as in production) takes its heartbeats too."""
    settings.HEARTBEAT_STALE_SECONDS = 5  # the processes beat every second (celery_env)
    log_path = tmp_path / "celery.log"
    processes = []

    def down():
        return client.get("/healthz").json()["down"]

    try:
        with log_path.open("w") as log:
            processes.append(start(["beat", "--schedule", str(tmp_path / "beat-schedule")], celery_env, log))
            processes.append(
                start(["worker", "--pool=solo", "--queues=default", "--without-mingle"], celery_env, log)
            )
            assert wait_for(lambda: down() == ["queue:io"]), (down(), log_path.read_text())
            processes.append(
                start(
                    ["worker", "--pool=threads", "--queues=io", "--without-mingle", "--hostname=io@%h"],
                    celery_env,
                    log,
                )
            )
            assert wait_for(lambda: client.get("/healthz").status_code == 200), (down(), log_path.read_text())
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    assert "Sending due task heartbeat-io" in log_path.read_text()


@pytest.mark.django_db
def test_a_503_is_not_logged_as_a_server_error_at_every_probe(client, caplog):
    Heartbeat.objects.create(name=BEAT, seen_at=timezone.now())
    with caplog.at_level("WARNING", logger="django.request"):
        assert client.get("/healthz").status_code == 503
    assert [r for r in caplog.records if r.name == "django.request"] == []
