"""Django admin for the audit log: browse and filter only (no add, change or delete)."""

from django.contrib import admin

from annotator.append_only import ReadOnlyAdmin
from annotator.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_username", "action", "dataset", "object_type", "object_id", "ip"]
    list_filter = ["action", "dataset", "actor", "at"]
    search_fields = ["actor_username", "object_id", "ip"]
    date_hierarchy = "at"
    readonly_fields = [field.name for field in AuditEvent._meta.fields]
