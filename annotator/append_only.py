"""Append-only tables (revisions, promotions, audit events): rows are written once, and
the admin only browses them."""

from django.contrib import admin
from django.db import models


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("revisions are append-only: they cannot be updated")

    def delete(self):
        raise TypeError("revisions are append-only: they cannot be deleted")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Browse and filter only: history (revisions, promotions, audit) is never edited."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
