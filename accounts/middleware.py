import zoneinfo

from django.utils import timezone


class UserTimeZoneMiddleware:
    """Dates and times on the pages in the signed-in user's time zone (`User.time_zone`, a setting); UTC for
    everyone else. Stored times stay in UTC: only their rendering changes."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.time_zone != "UTC":
            timezone.activate(zoneinfo.ZoneInfo(user.time_zone))
        else:
            timezone.deactivate()
        return self.get_response(request)
