"""URLs of the audit area (sign-in): ``api_urlpatterns`` under ``/api/``, ``urlpatterns`` pages."""

from django.contrib.auth.views import LoginView
from django.urls import include, path

from annotator.audit import api
from annotator.audit.signin import ThrottledAuthenticationForm

api_urlpatterns = [
    path("auth/token/", api.TokenView.as_view(), name="api-token"),
    path("auth/tokens/", api.tokens, name="api-tokens"),
    path("auth/tokens/<str:token_key>/", api.revoke_token, name="api-token-revoke"),
]

urlpatterns = [
    path("accounts/login/", LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
]
