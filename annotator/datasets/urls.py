"""URLs of the dataset area: ``api_urlpatterns`` go under ``/api/``, ``urlpatterns`` are pages."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from annotator.datasets import api, views

router = SimpleRouter()
router.register("datasets", api.DatasetViewSet, basename="api-dataset")
router.register("images", api.ImageViewSet, basename="api-image")
router.register("annotations", api.AnnotationViewSet, basename="api-annotation")

api_urlpatterns = [path("", include(router.urls))]

urlpatterns = [
    path("", views.dataset_list, name="dataset-list"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset-detail"),
    path("datasets/<int:pk>/upload/", views.dataset_upload, name="dataset-upload"),
    path("datasets/<int:pk>/export.json", views.dataset_export, name="dataset-export"),
]
