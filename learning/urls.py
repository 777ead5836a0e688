from django.urls import path

from . import views

urlpatterns = [
    path("analyses/", views.analysis_list, name="analysis_list"),
    path("analyses/<int:pk>/", views.analysis_detail, name="analysis_detail"),
    path("insights/", views.insights, name="insights"),
    path("help/policy/", views.help_policy, name="help_policy"),
]
