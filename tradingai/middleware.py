from django.http import JsonResponse
from django.utils.cache import add_never_cache_headers

from automation.health import health


class ApiNoStoreMiddleware:
    """Every API response is the caller's own data (or about their credentials): no browser, proxy or CDN
    may keep a copy. `no-store` and `private` among Django's never-cache headers."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith("/api/"):
            add_never_cache_headers(response)
        return response


class HealthCheckMiddleware:
    """`GET /healthz`: 200 when the database, the broker, a worker of each queue and beat are up, else 503
    naming what is down (automation.health). First of all middleware, so that nothing before it redirects
    (HTTPS, a missing slash), asks for a sign-in or refuses the host: load balancers probe by address, over
    plain HTTP. The answer holds no user data and is never cached."""

    PATH = "/healthz"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path != self.PATH or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        ok, body = health()
        response = JsonResponse(body, status=200 if ok else 503)
        add_never_cache_headers(response)
        # Not logged at ERROR by django.request, as any other 5xx is (Django's own flag for a response already
        # accounted for): a probe every few seconds while a queue is down would flood the log and, with
        # SENTRY_DSN set, Sentry. The body names what is down; why the broker or the database failed is
        # logged as a warning where it is found (automation.health).
        response._has_been_logged = True
        return response
