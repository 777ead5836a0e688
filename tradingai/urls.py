from django.contrib import admin
from django.http import HttpResponseRedirect, JsonResponse
from django.templatetags.static import static
from django.urls import include, path
from django.views.defaults import page_not_found, server_error
from django_otp.admin import OTPAdminSite

from accounts.forms import ThrottledAdminAuthenticationForm

from .api import urlpatterns as api_urls
from .metrics import metrics

admin.site.site_header = "TradingAI operations"
# Staff need a verified second factor (django-otp): a session signed in with the password alone is not
# staff here, and the admin's own sign-in asks for the code.
admin.site.__class__ = OTPAdminSite
admin.site.login_form = ThrottledAdminAuthenticationForm
admin.site.site_title = "TradingAI admin"

urlpatterns = [
    *api_urls,
    path("admin/", admin.site.urls),
    path("metrics", metrics, name="metrics"),
    # Where a browser looks when a page names no icon (an error page, the API's JSON).
    path("favicon.ico", lambda request: HttpResponseRedirect(static("favicon.svg"))),
    path("accounts/", include("accounts.urls")),
    path("", include("automation.urls")),
    path("", include("learning.urls")),
    path("", include("trades.urls")),
    path("", include("notifications.urls")),
]


def not_found(request, exception=None):
    """JSON under /api/, so that an integration never has to parse an HTML page; the site's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


def server_failed(request):
    """A server error under /api/ is JSON too (it says nothing of the cause, as the HTML page does not)."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Server error."}, status=500)
    return server_error(request)


handler404 = not_found
handler500 = server_failed
