"""Django admin for the audit log: browse and filter only (no add, change or delete)."""

from django.contrib import admin

from annotator.admin import ReadOnlyAdmin
from annotator.models import AuditEvent, LabelStudioProject


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_username", "action", "dataset", "object_type", "object_id", "ip"]
    list_filter = ["action", "dataset", "actor", "at"]
    search_fields = ["actor_username", "object_id", "ip"]
    date_hierarchy = "at"
    readonly_fields = [field.name for field in AuditEvent._meta.fields]



@admin.register(LabelStudioProject)
class LabelStudioProjectAdmin(admin.ModelAdmin):
    list_display = ["dataset", "url", "project_id", "pushed_at", "pulled_at"]
    readonly_fields = ["dataset", "url", "project_id", "created_at", "pushed_at", "pulled_at"]

    def has_add_permission(self, request):
        return False
