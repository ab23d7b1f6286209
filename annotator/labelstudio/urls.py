from django.urls import path

from annotator.labelstudio import views

urlpatterns = [
    path("", views.HealthView.as_view(), name="ls-root"),
    path("health", views.HealthView.as_view(), name="ls-health"),
    path("setup", views.SetupView.as_view(), name="ls-setup"),
    path("predict", views.PredictView.as_view(), name="ls-predict"),
    path("webhook", views.WebhookView.as_view(), name="ls-webhook"),
    path("versions", views.VersionsView.as_view(), name="ls-versions"),
    path("images/<str:token>", views.SignedImageView.as_view(), name="ls-image"),
]
