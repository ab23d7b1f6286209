from django.urls import include, path
from rest_framework.routers import DefaultRouter

from annotator import api, views

router = DefaultRouter()
router.register("datasets", api.DatasetViewSet, basename="api-dataset")
router.register("images", api.ImageViewSet, basename="api-image")
router.register("annotations", api.AnnotationViewSet, basename="api-annotation")
router.register("model-versions", api.ModelVersionViewSet, basename="api-model-version")
router.register("training-runs", api.TrainingRunViewSet, basename="api-training-run")
router.register("rankings", api.RankingViewSet, basename="api-ranking")
router.register("schedules", api.ScheduleViewSet, basename="api-schedule")

urlpatterns = [
    path("", views.dataset_list, name="dataset-list"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset-detail"),
    path("datasets/<int:pk>/upload/", views.dataset_upload, name="dataset-upload"),
    path("datasets/<int:pk>/export.json", views.dataset_export, name="dataset-export"),
]

api_urlpatterns = [
    path("analyze", api.AnalyzeView.as_view(), name="api-analyze"),
    path("auth/token/", api.TokenView.as_view(), name="api-token"),
    path("", include(router.urls)),
]
