"""Django admin for the learning loop: policies, versions, promotions, runs, rankings."""

from django.contrib import admin

from annotator.append_only import ReadOnlyAdmin
from annotator.learning import models


@admin.register(models.LearningPolicy)
class LearningPolicyAdmin(admin.ModelAdmin):
    list_display = ["dataset", "engine", "iterations", "gate_metric", "gate_margin", "retrain_after_new_labels", "ranking_strategy"]


@admin.register(models.ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Versions are created by training or ``manage.py register_weights``; promote and
    roll back from the training dashboard or the API (each leaves a Promotion row)."""

    list_display = ["name", "dataset", "status", "engine", "start", "gate_passed", "created_at"]

    @admin.display(description="start")
    def start(self, version) -> str:
        """Where training started: its parent version, or the engine's ``init``."""
        return f"from {version.parent.name}" if version.parent_id else str(version.config.get("init") or "random")
    list_filter = ["dataset", "status", "engine"]
    readonly_fields = [f.name for f in models.ModelVersion._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(models.Promotion)
class PromotionAdmin(ReadOnlyAdmin):
    list_display = ["dataset", "serial", "model_version", "kind", "actor", "created_at"]
    list_filter = ["dataset", "kind"]


@admin.register(models.TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "state", "trigger", "iteration", "total_iterations", "worker_host", "created_at"]
    list_filter = ["dataset", "state", "trigger"]
    readonly_fields = [f.name for f in models.TrainingRun._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(models.Ranking)
class RankingAdmin(admin.ModelAdmin):
    list_display = ["dataset", "strategy", "model_version", "image_count", "seconds", "created_at"]
    list_filter = ["dataset", "strategy"]
