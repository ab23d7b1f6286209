"""Django admin for the dataset layer. Revisions are read-only: they are the history."""

from django.contrib import admin, messages

from annotator.append_only import ReadOnlyAdmin
from annotator.datasets import models
from annotator.datasets.services.membership import freeze_validation_split


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    autocomplete_fields = ["user"]


class CategoryInline(admin.TabularInline):
    model = models.Category
    extra = 0


@admin.register(models.Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at", "val_frozen_at"]
    search_fields = ["name"]
    readonly_fields = ["val_frozen_at", "created_at"]
    inlines = [MembershipInline, CategoryInline]
    actions = ["freeze_validation"]

    @admin.action(description="Freeze the validation split")
    def freeze_validation(self, request, queryset):
        for dataset in queryset:
            freeze_validation_split(dataset)
        self.message_user(request, f"Froze {queryset.count()} validation split(s).", messages.SUCCESS)


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["dataset", "user", "role"]
    list_filter = ["role", "dataset"]


@admin.register(models.Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "coco_id", "supercategory", "dataset"]
    list_filter = ["dataset"]


class AnnotationInline(admin.TabularInline):
    model = models.Annotation
    extra = 0
    fields = ["category", "x", "y", "w", "h", "source", "score", "serving_version", "version", "is_deleted"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(models.Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["file_name", "dataset", "split", "status", "width", "height", "bit_depth"]
    list_filter = ["dataset", "split", "status", "source", "photometric_interpretation"]
    search_fields = ["file_name", "sha256"]
    readonly_fields = [
        "file", "original", "sha256", "width", "height", "bit_depth",
        "photometric_interpretation", "pixel_spacing_row", "pixel_spacing_col", "source",
        "created_at", "updated_at",
    ]
    inlines = [AnnotationInline]


class RevisionInline(admin.TabularInline):
    model = models.AnnotationRevision
    extra = 0
    fields = ["version", "action", "actor", "reason", "before", "after", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(models.Annotation)
class AnnotationAdmin(ReadOnlyAdmin):
    """Boxes are shown, not edited here: edits must leave a revision (use the review page
    or the API)."""

    list_display = ["id", "image", "category", "source", "score", "serving_version", "version", "is_deleted"]
    list_filter = ["source", "is_deleted", "category__dataset"]
    inlines = [RevisionInline]


@admin.register(models.AnnotationRevision)
class AnnotationRevisionAdmin(ReadOnlyAdmin):
    list_display = ["annotation", "version", "action", "actor", "reason", "created_at"]
    list_filter = ["action"]
    date_hierarchy = "created_at"
