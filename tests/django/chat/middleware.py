"""JWT query-string authentication for WebSocket connections (?token=<access JWT>).

As in the original project: a valid SimpleJWT access token whose user exists sets
scope['user'], anything else gives AnonymousUser. There is no is_active check.
A valid token without the user id claim gives a user that raises KeyError when
touched: ChatConsumer lets it escape (the handshake fails with HTTP 500), the
conversation-list and notification consumers catch it and close with 4001.
"""
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken


class ClaimlessUser:
    """scope['user'] for a token without the user id claim: every attribute
    raises the KeyError that reading the claim raised."""

    def __init__(self, error):
        self._error = error

    def __getattr__(self, name):
        raise self._error


@database_sync_to_async
def get_user_from_token(token):
    try:
        access = AccessToken(token)
    except TokenError:
        return AnonymousUser()
    try:
        user_id = access[api_settings.USER_ID_CLAIM]
    except KeyError as e:
        return ClaimlessUser(e)
    User = get_user_model()
    try:
        return User.objects.get(**{api_settings.USER_ID_FIELD: user_id})
    except User.DoesNotExist:
        return AnonymousUser()


class JWTAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        query = parse_qs(scope.get('query_string', b'').decode())
        token = (query.get('token') or [None])[0]
        scope = dict(scope)
        scope['user'] = await get_user_from_token(token) if token else AnonymousUser()
        return await self.inner(scope, receive, send)
