from django.urls import path

from . import views

urlpatterns = [
    path("notifications/", views.notification_settings, name="notifications"),
    path("notifications/switches/", views.notification_switches, name="notification_switches"),
    path("notifications/channels/<int:pk>/test/", views.channel_test, name="channel_test"),
    path("notifications/channels/<int:pk>/delete/", views.channel_delete, name="channel_delete"),
    path("notifications/deliveries/", views.deliveries, name="deliveries"),
]
