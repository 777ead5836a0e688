from django.urls import path, re_path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("bots/new/", views.bot_create, name="bot_create"),
    path("bots/<int:pk>/", views.bot_detail, name="bot_detail"),
    path("bots/<int:pk>/edit/", views.bot_edit, name="bot_edit"),
    path("bots/<int:pk>/policy/", views.bot_policy_pin, name="bot_policy_pin"),
    re_path(r"^bots/(?P<pk>\d+)/(?P<action>start|stop|run-now)/$", views.bot_action, name="bot_action"),
    path("analyses/<int:pk>/chart.png", views.analysis_chart, name="analysis_chart"),
    path("bots/<int:pk>/price-chart.json", views.bot_price_chart, name="bot_price_chart"),
    path("trades/<int:pk>/price-chart.json", views.trade_price_chart, name="trade_price_chart"),
]
