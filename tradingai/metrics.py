"""`/metrics` for Prometheus: django-prometheus's request and database metrics of this web process, and the
product's own (automation.metrics), read from the database at each scrape.

Open to anyone only where `METRICS_PUBLIC` is on (the local default). Elsewhere it answers the bearer token
`TRADINGAI_METRICS_TOKEN` (Prometheus's `authorization` setting), or a staff member signed in with a second
factor, as the admin needs; anyone else gets 401. The figures hold no user data, but they tell how big the
business is and what it spends."""

import hmac

from django.conf import settings
from django.http import HttpResponse
from django.utils.cache import add_never_cache_headers
from django_prometheus.exports import ExportToDjangoView
from prometheus_client import REGISTRY

from automation.metrics import ProductCollector

# Once, in the web processes, which import this with the URLs; the workers only add to the totals.
REGISTRY.register(ProductCollector())


def allowed(request) -> bool:
    if settings.METRICS_PUBLIC:
        return True
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return True
    user = request.user
    return user.is_authenticated and user.is_staff and user.is_verified()


def metrics(request):
    if not allowed(request):
        response = HttpResponse(
            "/metrics needs the bearer token (TRADINGAI_METRICS_TOKEN) or a staff sign-in with two factors\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    else:
        response = ExportToDjangoView(request)
    add_never_cache_headers(response)
    return response
