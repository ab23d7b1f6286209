"""URLs of the Label Studio ML-backend protocol, all under ``/ls/`` (``urlpatterns``)."""

from django.urls import path

from annotator.labelstudio import views

api_urlpatterns: list = []

urlpatterns = [
    path("ls/", views.HealthView.as_view(), name="ls-root"),
    path("ls/health", views.HealthView.as_view(), name="ls-health"),
    path("ls/setup", views.SetupView.as_view(), name="ls-setup"),
    path("ls/predict", views.PredictView.as_view(), name="ls-predict"),
    path("ls/webhook", views.WebhookView.as_view(), name="ls-webhook"),
    path("ls/versions", views.VersionsView.as_view(), name="ls-versions"),
    path("ls/images/<str:token>", views.SignedImageView.as_view(), name="ls-image"),
]
