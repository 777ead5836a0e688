from django.urls import path, re_path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("bots/new/", views.bot_create, name="bot_create"),
    path("bots/<int:pk>/", views.bot_detail, name="bot_detail"),
    path("bots/<int:pk>/edit/", views.bot_edit, name="bot_edit"),
    path("bots/<int:pk>/policy/", views.bot_policy_pin, name="bot_policy_pin"),
    re_path(r"^bots/(?P<pk>\d+)/(?P<action>start|stop|run-now)/$", views.bot_action, name="bot_action"),
    path("backtests/", views.backtest_list, name="backtest_list"),
    path("backtests/new/", views.backtest_create, name="backtest_create"),
    path("backtests/<int:pk>/", views.backtest_detail, name="backtest_detail"),
    path("backtests/<int:pk>/status.json", views.backtest_status, name="backtest_status"),
    path("backtests/<int:pk>/report.json", views.backtest_report, name="backtest_report"),
    path("analyses/<int:pk>/chart.png", views.analysis_chart, name="analysis_chart"),
    path("bots/<int:pk>/price-chart.json", views.bot_price_chart, name="bot_price_chart"),
    path("trades/<int:pk>/price-chart.json", views.trade_price_chart, name="trade_price_chart"),
]
