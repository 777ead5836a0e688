from django.contrib import admin
from django.urls import include, path

from .api import urlpatterns as api_urls

admin.site.site_header = "TradingAI operations"
admin.site.site_title = "TradingAI admin"

urlpatterns = [
    *api_urls,
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("", include("automation.urls")),
]
