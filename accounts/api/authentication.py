from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.models import ApiToken

# A token's last use is written at most this often: every request writing a row would make reads writes.
LAST_USED_EVERY = timedelta(minutes=5)
KEYWORDS = (b"token", b"bearer")


class TokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token tai_…` (or `Bearer tai_…`), looked up by the token's SHA-256."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() not in KEYWORDS:
            return None  # not ours: the session may still authenticate the request
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Give the header as `Authorization: Token <token>`.")
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("The token has characters no token has.") from None
        token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.digest(key)).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        # Makes a request without credentials a 401 (with this challenge) rather than a 403.
        return "Token"


class TokenScheme(OpenApiAuthenticationExtension):
    """How the schema tells clients to send the token."""

    target_class = TokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>` (or `Bearer <token>`); POST /api/v1/auth/token/ issues one.",
        }
