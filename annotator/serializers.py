from django.db.models import Count
from rest_framework import serializers

from annotator.models import Category, Dataset, Image, Split


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
