"""Django admin for the Label Studio links (read-only: they are written by push/pull)."""

from django.contrib import admin

from annotator.labelstudio.models import LabelStudioProject


@admin.register(LabelStudioProject)
class LabelStudioProjectAdmin(admin.ModelAdmin):
    list_display = ["dataset", "url", "project_id", "pushed_at", "pulled_at"]
    readonly_fields = ["dataset", "url", "project_id", "created_at", "pushed_at", "pulled_at"]

    def has_add_permission(self, request):
        return False
