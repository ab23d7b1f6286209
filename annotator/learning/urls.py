"""URLs of the learning area: ``api_urlpatterns`` go under ``/api/``, ``urlpatterns`` are pages."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from annotator.learning import api, views

router = SimpleRouter()
router.register("model-versions", api.ModelVersionViewSet, basename="api-model-version")
router.register("training-runs", api.TrainingRunViewSet, basename="api-training-run")
router.register("rankings", api.RankingViewSet, basename="api-ranking")
router.register("schedules", api.ScheduleViewSet, basename="api-schedule")

api_urlpatterns = [
    path("datasets/<int:dataset_id>/train-now/", api.TrainNowView.as_view(), name="api-train-now"),
    path("datasets/<int:dataset_id>/rollback/", api.RollbackView.as_view(), name="api-rollback"),
    path("datasets/<int:dataset_id>/dashboard/", api.DashboardView.as_view(), name="api-dashboard"),
    path("training-runs/<int:run_id>/cancel/", api.CancelRunView.as_view(), name="api-run-cancel"),
    path("model-versions/<int:version_id>/promote/", api.PromoteView.as_view(), name="api-promote"),
    path("analyze", api.AnalyzeView.as_view(), name="api-analyze"),
    path("review/quick-reads/<int:pk>/", api.quick_read_status, name="review-api-quick-read"),
    path("", include(router.urls)),
]

urlpatterns = [
    path("datasets/<int:dataset_id>/training/", views.training_dashboard, name="training-dashboard"),
    path("review/quick-read/", views.quick_read_page, name="quick-read"),
    path("review/quick-read/<int:pk>/", views.quick_read_result, name="quick-read-result"),
]
