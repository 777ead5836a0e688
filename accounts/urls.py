from django.contrib.auth import views as django_auth_views
from django.urls import path

from . import auth_views, two_factor, views

urlpatterns = [
    path("signup/", auth_views.signup, name="signup"),
    path("signup/confirm/<str:key>/", auth_views.signup_confirm, name="signup_confirm"),
    path("login/", two_factor.LoginView.as_view(), name="login"),
    path("login/code/", two_factor.login_code, name="login_code"),
    path("logout/", django_auth_views.LogoutView.as_view(), name="logout"),
    path("password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password/change/done/",
        django_auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("password/reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/sent/", django_auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/done/",
        django_auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("settings/", views.settings_page, name="settings"),
    path("intro/dismiss/", views.intro_dismiss, name="intro_dismiss"),
    path("settings/two-factor/", two_factor.settings_page, name="two_factor"),
    path("settings/two-factor/qr.svg", two_factor.qr_code, name="two_factor_qr"),
    path("audit/", views.audit_log, name="audit_log"),
    path("api-tokens/", views.api_tokens, name="api_tokens"),
    path("api-tokens/<int:pk>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("models/", views.model_connections, name="model_connections"),
    path("models/<int:pk>/", views.model_connection_edit, name="model_connection_edit"),
    path("models/<int:pk>/delete/", views.model_connection_delete, name="model_connection_delete"),
    path("exchange-accounts/", views.exchange_accounts, name="exchange_accounts"),
    path("exchange-accounts/<int:pk>/delete/", views.exchange_account_delete, name="exchange_account_delete"),
]
