from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotator import learning_urls, views
from annotator.permissions import ThrottledAuthenticationForm
from annotator.urls import api_urlpatterns

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/login/", LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("ls/", include("annotator.labelstudio.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/auth/", include("rest_framework.urls")),
    path("api/", include(learning_urls.api_urlpatterns)),
    path("api/", include(api_urlpatterns)),
    path("", include(learning_urls.urlpatterns)),
    path("", include("annotator.review_urls")),
    path("", include("annotator.urls")),
]
