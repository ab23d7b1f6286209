"""URLs of the platform itself (health, the icon)."""

from django.contrib.staticfiles.storage import staticfiles_storage
from django.urls import path
from django.views.generic import RedirectView

from annotator.web import views

api_urlpatterns: list = []

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # browsers ask for /favicon.ico whatever the page says; the icon is a static file
    path("favicon.ico", RedirectView.as_view(url=staticfiles_storage.url("favicon.svg"), permanent=True)),
]
