from django.conf import settings
from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "TradingAI operations"
admin.site.site_title = "TradingAI admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("", include("automation.urls")),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
