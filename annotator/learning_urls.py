from django.urls import path

from annotator import learning_api, learning_views

api_urlpatterns = [
    path("datasets/<int:dataset_id>/train-now/", learning_api.TrainNowView.as_view(), name="api-train-now"),
    path("datasets/<int:dataset_id>/rollback/", learning_api.RollbackView.as_view(), name="api-rollback"),
    path("datasets/<int:dataset_id>/dashboard/", learning_api.DashboardView.as_view(), name="api-dashboard"),
    path("training-runs/<int:run_id>/cancel/", learning_api.CancelRunView.as_view(), name="api-run-cancel"),
    path("model-versions/<int:version_id>/promote/", learning_api.PromoteView.as_view(), name="api-promote"),
]

urlpatterns = [
    path("datasets/<int:dataset_id>/training/", learning_views.training_dashboard, name="training-dashboard"),
]
