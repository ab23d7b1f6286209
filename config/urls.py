"""Every product area is included the same way: its ``api_urlpatterns`` under ``/api/``
and its pages (``urlpatterns``) at the root."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from annotator.audit import urls as audit_urls
from annotator.datasets import urls as datasets_urls
from annotator.labelstudio import urls as labelstudio_urls
from annotator.learning import urls as learning_urls
from annotator.review import urls as review_urls
from annotator.web import urls as web_urls

AREAS = (web_urls, audit_urls, learning_urls, review_urls, labelstudio_urls, datasets_urls)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # the split view serves its start-up script from a URL: no inline script under the CSP
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/auth/", include("rest_framework.urls")),
]
for area in AREAS:
    urlpatterns += [path("api/", include(area.api_urlpatterns)), path("", include(area.urlpatterns))]
