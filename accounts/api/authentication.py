from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiToken

# A token's last use is written at most this often: every request writing a row would make reads writes.
LAST_USED_EVERY = timezone.timedelta(minutes=5)


class TokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token tai_…` (or `Bearer tai_…`), looked up by the token's SHA-256."""

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if header and header[0].lower() == b"bearer":
            header[0] = b"Token"
            request.META["HTTP_AUTHORIZATION"] = b" ".join(header).decode(errors="replace")
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.digest(key)).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token
