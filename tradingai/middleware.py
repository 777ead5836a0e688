from django.utils.cache import add_never_cache_headers


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
