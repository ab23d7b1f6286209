"""API tokens for scripts: sign in (``POST /api/auth/token/``), list one's own tokens and
revoke one (``/api/auth/tokens/``).

Tokens are django-rest-knox's: only a digest is stored, each expires after
``API_TOKEN_TTL_SECONDS``, and a password change or a sign-out revokes all of the user's
tokens (``annotator.audit.signals``). The token itself is shown once, when issued.
"""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.utils import extend_schema
from knox.models import AuthToken
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, Throttled
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from annotator.audit.models import AuditAction
from annotator.audit.services import client_ip, record_event
from annotator.audit.signin import login_locked


class IssuedTokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="send as 'Authorization: Token <token>'; shown only now")
    token_key = serializers.CharField(help_text="the token's public id (its first characters)")
    expiry = serializers.DateTimeField()


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuthToken
        fields = ["token_key", "created", "expiry"]


class TokenView(GenericAPIView):
    """``POST /api/auth/token/`` (username, password) -> a new token for scripts.
    Rate-limited, and refused with 429 while the name or address is locked out."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    serializer_class = AuthTokenSerializer
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"

    @extend_schema(responses={200: IssuedTokenSerializer}, summary="Issue an API token")
    def post(self, request, *args, **kwargs):
        name = request.data.get("username", "") if isinstance(request.data, Mapping) else ""
        if login_locked(str(name)[:150], client_ip(request)):
            raise Throttled(detail="too many failed sign-ins; try again later")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        instance, token = AuthToken.objects.create(user)
        record_event(request, user, AuditAction.LOGIN_SUCCEEDED,
                     details={"via": "token", "token_key": instance.token_key})
        return Response({"token": token, "token_key": instance.token_key, "expiry": instance.expiry})


@extend_schema(responses=TokenSerializer(many=True), summary="Your API tokens (not the secrets)")
@api_view(["GET"])
def tokens(request):
    mine = AuthToken.objects.filter(user=request.user).order_by("-created")
    return Response(TokenSerializer(mine, many=True).data)


@extend_schema(request=None, responses={204: None}, summary="Revoke one of your API tokens")
@api_view(["DELETE"])
def revoke_token(request, token_key):
    deleted, _ = AuthToken.objects.filter(user=request.user, token_key=token_key).delete()
    if not deleted:
        raise NotFound("you have no token with this key")
    return Response(status=status.HTTP_204_NO_CONTENT)
