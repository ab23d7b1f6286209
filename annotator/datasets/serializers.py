"""Input and output serializers of the dataset area (one output shape per entity)."""

from django.contrib.auth import get_user_model
from django.db.models import Count
from rest_framework import serializers

from annotator.datasets.models import Annotation, Category, Dataset, Image, Membership, Role, Split
from annotator.web.serializers import StrictFieldsMixin


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


class ImageUploadSerializer(StrictFieldsMixin, serializers.Serializer):
    """One radiograph, as ``file`` (or ``files``, the web form's name for it)."""

    file = serializers.FileField(required=False, help_text="PNG (8 or 16 bit), JPEG or DICOM")
    files = serializers.FileField(required=False, write_only=True, help_text="the same, under the web form's name")
    split = serializers.ChoiceField(choices=Split.choices, default=Split.POOL)

    def validate(self, data):
        given = [data[name] for name in ("file", "files") if name in data]
        if len(given) != 1:
            raise serializers.ValidationError({"file": "send one radiograph as 'file' (or 'files')"})
        return {"file": given[0], "split": data["split"]}


class ExportQuerySerializer(serializers.Serializer):
    split = serializers.CharField(required=False, default="all", help_text="comma-separated, or all")


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
            "serving_version", "author", "version", "is_deleted", "created_at", "updated_at",
        ]
        read_only_fields = fields


