from django.contrib.auth import get_user_model
from django.db.models import Count
from django_celery_beat.models import PeriodicTask
from rest_framework import serializers

from annotator.models import (
    Annotation,
    Category,
    Dataset,
    Image,
    Membership,
    ModelVersion,
    RankedImage,
    Ranking,
    Role,
    Split,
    TrainingRun,
)


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "coco_id", "name", "supercategory"]


class DatasetSerializer(serializers.ModelSerializer):
    categories = CategorySerializer(many=True, read_only=True)
    image_counts = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = ["id", "name", "description", "created_at", "val_frozen_at", "categories", "image_counts"]

    def get_image_counts(self, dataset) -> dict[str, dict[str, int]]:
        """``{split: {status: count}}``."""
        counts: dict[str, dict[str, int]] = {}
        for row in dataset.images.values("split", "status").annotate(n=Count("id")):
            counts.setdefault(row["split"], {})[row["status"]] = row["n"]
        return counts


class ImageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Image
        fields = [
            "id", "dataset", "file_name", "sha256", "width", "height", "bit_depth",
            "photometric_interpretation", "window_center", "window_width",
            "pixel_spacing_row", "pixel_spacing_col", "source", "split", "status", "created_at",
        ]
        read_only_fields = fields


class ImageUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="PNG (8 or 16 bit), JPEG or DICOM")
    split = serializers.ChoiceField(choices=Split.choices, default=Split.POOL)


class ExportQuerySerializer(serializers.Serializer):
    split = serializers.CharField(required=False, default="all", help_text="comma-separated, or all")


class StrictFieldsMixin:
    """Refuse input keys that are not writable fields of the serializer (400 naming
    each), instead of DRF's default of silently ignoring them."""

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data.keys()) - writable)
            if unknown:
                raise serializers.ValidationError(
                    {name: "unknown or read-only field" for name in unknown}
                )
        return super().to_internal_value(data)


class DatasetUpdateSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = ["name", "description"]


class MembershipSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    username = serializers.SlugRelatedField(
        source="user", slug_field="username", queryset=get_user_model().objects.all()
    )

    class Meta:
        model = Membership
        fields = ["id", "username", "role"]
        read_only_fields = ["id"]


class MembershipRoleSerializer(StrictFieldsMixin, serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class AnnotationSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="coco_id", read_only=True)
    category_name = serializers.CharField(source="category.name", read_only=True)

    class Meta:
        model = Annotation
        fields = [
            "id", "image", "category", "category_name", "x", "y", "w", "h", "source", "score",
            "model_version", "author", "version", "is_deleted", "created_at", "updated_at",
        ]
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id", "dataset", "name", "engine", "config", "category_ids", "weights_sha256", "parent",
            "training_run", "metrics", "status", "gate_passed", "gate_reason", "created_at",
        ]
        read_only_fields = fields


class TrainingRunSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True)

    class Meta:
        model = TrainingRun
        fields = [
            "id", "dataset", "state", "trigger", "requested_by", "base_version", "snapshot_sha256",
            "snapshot_images", "snapshot_boxes", "iteration", "total_iterations", "progress",
            "loss_history", "error", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = fields


class RankedImageSerializer(serializers.ModelSerializer):
    class Meta:
        model = RankedImage
        fields = ["image", "position", "score"]
        read_only_fields = fields


class RankingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Ranking
        fields = ["id", "dataset", "strategy", "model_version", "options", "image_count", "seconds", "created_at"]
        read_only_fields = fields


class ScheduleSerializer(serializers.ModelSerializer):
    """A django-celery-beat periodic task that names the dataset in its kwargs."""

    schedule = serializers.SerializerMethodField()

    class Meta:
        model = PeriodicTask
        fields = ["id", "name", "task", "enabled", "kwargs", "schedule", "last_run_at", "total_run_count"]
        read_only_fields = fields

    def get_schedule(self, task) -> str:
        return str(task.schedule)


class AnalyzeSerializer(StrictFieldsMixin, serializers.Serializer):
    dataset = serializers.IntegerField(min_value=1, help_text="whose production model reads the image")
    file = serializers.FileField(help_text="PNG (8 or 16 bit), JPEG or DICOM")


class AnalyzeBoxSerializer(serializers.Serializer):
    bbox = serializers.ListField(child=serializers.FloatField(), help_text="x, y, w, h in pixels")
    category = serializers.IntegerField(help_text="COCO category id")
    category_name = serializers.CharField()
    score = serializers.FloatField()


class AnalyzeResultSerializer(serializers.Serializer):
    fracture_probability = serializers.FloatField()
    boxes = AnalyzeBoxSerializer(many=True)
    model_version = serializers.CharField(help_text="the serving version that read the image")
    width = serializers.IntegerField()
    height = serializers.IntegerField()
