from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self):
        # Events raised below this app (a trade opened or closed, in trades) arrive as signals.
        from . import receivers  # noqa: F401
