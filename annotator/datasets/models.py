"""The dataset layer: datasets, their members and categories, images, boxes and revisions.

Boxes are stored in image pixels as COCO orders them (``x, y, w, h``, float). Every box
write goes through ``annotator.datasets.services.annotations`` so that it leaves an append-only
``AnnotationRevision`` and bumps the box's ``version`` (optimistic locking).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from annotator.append_only import AppendOnlyQuerySet
from annotator.errors import Conflict

__all__ = [
    "Annotation",
    "AnnotationRevision",
    "AnnotationSource",
    "Category",
    "CopyVerdict",
    "ImageCopy",
    "ImportRecord",
    "Dataset",
    "Image",
    "ImageSource",
    "Membership",
    "Photometric",
    "ReviewStatus",
    "RevisionAction",
    "Role",
    "Split",
    "ValidationSplitFrozen",
    "image_storage_path",  # referenced by migrations
    "snapshot_serving_version",
    "original_storage_path",
]


class ValidationSplitFrozen(ValidationError, Conflict):
    """An image would enter or leave a frozen validation split."""


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    RADIOLOGIST = "radiologist", "Radiologist"
    VIEWER = "viewer", "Viewer"


class Dataset(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    val_frozen_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Once set, the validation split is fixed: no image enters or leaves it, "
        "and it is never offered for labeling or training.",
    )
    anonymize_upload_names = models.BooleanField(
        default=True,
        help_text="store and export uploads under a content hash instead of the name they came with "
        "(file names often carry patient identifiers)",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="datasets"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def val_frozen(self) -> bool:
        return self.val_frozen_at is not None


class Membership(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.RADIOLOGIST)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.dataset}"


class Category(models.Model):
    """A fracture type. ``coco_id`` is the stable id used in every COCO export."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="categories")
    coco_id = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    supercategory = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["dataset", "coco_id"]
        verbose_name_plural = "categories"
        constraints = [
            models.UniqueConstraint(fields=["dataset", "coco_id"], name="category_coco_id_unique"),
            models.UniqueConstraint(fields=["dataset", "name"], name="category_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    VAL = "val", "Validation"
    TEST = "test", "Test"
    POOL = "pool", "Unlabeled pool"

    @classmethod
    def sampleable(cls) -> tuple[str, ...]:
        """Splits whose images may be offered to readers and used for training.
        Validation and test images are never sampled: they measure the model."""
        return (cls.TRAIN, cls.POOL)


class ReviewStatus(models.TextChoices):
    UNLABELED = "unlabeled", "Unlabeled"
    PROPOSED = "proposed", "Proposed"
    IN_REVIEW = "in_review", "In review"
    LABELED = "labeled", "Labeled with boxes"
    NEGATIVE = "negative", "Labeled negative"
    SKIPPED = "skipped", "Skipped"
    CONFLICT = "conflict", "Labels disagree (to settle)"

    # The sets of statuses the rules use, in one place.
    @classmethod
    def labeled(cls) -> tuple[str, ...]:
        """Finished with boxes or as negative: what training snapshots are made of."""
        return (cls.LABELED, cls.NEGATIVE)

    @classmethod
    def waiting(cls) -> tuple[str, ...]:
        """Nobody has opened or finished it: the pool that rankings order and whose
        proposals a newer model may replace."""
        return (cls.UNLABELED, cls.PROPOSED)

    @classmethod
    def unfinished(cls) -> tuple[str, ...]:
        """Still to be read: waiting, open in a reader's hands, or with copies whose labels
        disagree (a reader settles them; until then they are not trained on)."""
        return (*cls.waiting(), cls.IN_REVIEW, cls.CONFLICT)

    @classmethod
    def unread(cls) -> tuple[str, ...]:
        """No reading result yet (skipped included): an export marks these as not read,
        so an import does not take their missing boxes for "no fracture"."""
        return (*cls.unfinished(), cls.SKIPPED)


class ImageSource(models.TextChoices):
    COCO = "coco", "COCO import"
    WEB = "web", "Web upload"
    API = "api", "API upload"


class Photometric(models.TextChoices):
    MONOCHROME1 = "MONOCHROME1", "MONOCHROME1 (inverted: low values are white)"
    MONOCHROME2 = "MONOCHROME2", "MONOCHROME2"


class ImageQuerySet(models.QuerySet):
    def sampleable(self) -> ImageQuerySet:
        """Images that may be offered for labeling or used for training."""
        return self.filter(split__in=Split.sampleable())

    def labeled(self) -> ImageQuerySet:
        return self.filter(status__in=ReviewStatus.labeled())


def image_storage_path(image: Image, filename: str) -> str:
    return f"datasets/{image.dataset_id}/{filename}"


def original_storage_path(image: Image, filename: str) -> str:
    return f"datasets/{image.dataset_id}/originals/{filename}"


class Image(models.Model):
    """One radiograph. ``file`` holds pixels a browser can show (PNG, 8 or 16 bit, or the
    uploaded JPEG); ``original`` holds the de-identified DICOM when there was one.
    ``sha256`` is the digest of the decoded pixels, so the same picture is stored once
    per dataset whatever its container."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="images")
    file = models.FileField(upload_to=image_storage_path, max_length=500)
    original = models.FileField(upload_to=original_storage_path, max_length=500, blank=True)
    file_name = models.CharField(max_length=500, help_text="The name it arrived with.")
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bit_depth = models.PositiveSmallIntegerField()
    photometric_interpretation = models.CharField(
        max_length=11, choices=Photometric.choices, default=Photometric.MONOCHROME2
    )
    window_center = models.FloatField()
    window_width = models.FloatField()
    pixel_spacing_row = models.FloatField(null=True, blank=True, help_text="mm")
    pixel_spacing_col = models.FloatField(null=True, blank=True, help_text="mm")
    exif_orientation = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="the EXIF orientation applied on the way in (pixels are stored upright)"
    )
    damage = models.TextField(blank=True, help_text="why the file is damaged, when it was stored as far as it decoded")
    decode_warnings = models.JSONField(
        default=list, blank=True, help_text="problems that did not stop decoding (e.g. unusable pixel spacing)"
    )
    source = models.CharField(max_length=10, choices=ImageSource.choices)
    split = models.CharField(max_length=10, choices=Split.choices, default=Split.POOL)
    status = models.CharField(
        max_length=12, choices=ReviewStatus.choices, default=ReviewStatus.UNLABELED
    )
    skip_reason = models.TextField(blank=True)
    conflict = models.TextField(
        blank=True, help_text="why the copies of this image disagree, until a reader settles it"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "sha256"], name="image_unique_pixels"),
            models.CheckConstraint(
                condition=Q(width__gt=0) & Q(height__gt=0), name="image_positive_size"
            ),
            models.CheckConstraint(condition=Q(window_width__gt=0), name="image_window_width"),
        ]
        indexes = [models.Index(fields=["dataset", "split", "status"])]

    def __str__(self) -> str:
        return self.file_name

    def save(self, *args, **kwargs):
        self.check_validation_split_frozen()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        self.check_validation_split_frozen()

    def check_validation_split_frozen(self) -> None:
        """Once a dataset's validation split is frozen, no image enters or leaves it."""
        if not self.dataset_id or not Dataset.objects.filter(
            pk=self.dataset_id, val_frozen_at__isnull=False
        ).exists():
            return
        stored_split = (
            Image.objects.filter(pk=self.pk).values_list("split", flat=True).first()
            if self.pk
            else None
        )
        if (stored_split == Split.VAL) != (self.split == Split.VAL):
            raise ValidationSplitFrozen(
                f"the validation split of dataset {self.dataset_id} is frozen: "
                f"image {self.file_name!r} cannot move from {stored_split or 'nowhere'} "
                f"to {self.split}"
            )


class CopyVerdict(models.TextChoices):
    FRACTURED = "fractured", "Fractured (with boxes)"
    NEGATIVE = "negative", "No fracture"
    UNLABELED = "unlabeled", "Not labeled"


class ImageCopy(models.Model):
    """One file that arrived with the same pixels as its image: its name, the split its
    source listed it in, and the label it carried. Pixel-identical files are stored once;
    their copies keep every name and every read (the boxes are independent reads)."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="copies")
    file_name = models.CharField(max_length=500)
    split = models.CharField(max_length=10, choices=Split.choices, blank=True, help_text="the split its list named")
    verdict = models.CharField(max_length=10, choices=CopyVerdict.choices)
    boxes = models.JSONField(default=list, blank=True, help_text="[{bbox: [x, y, w, h], category: coco_id}]")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image", "id"]
        constraints = [models.UniqueConstraint(fields=["image", "file_name"], name="image_copy_name_once")]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.verdict})"


class ImportRecord(models.Model):
    """One import run and its report: every file and box accounted for."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="imports")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=1000, help_text="what was imported (the annotation file)")
    options = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"import into {self.dataset} at {self.started_at:%Y-%m-%d %H:%M}"


class AnnotationSource(models.TextChoices):
    HUMAN = "human", "Human"
    MODEL = "model", "Model proposal"


class Annotation(models.Model):
    """The current state of one box. Its history is in ``revisions``."""

    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="annotations")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="annotations")
    x = models.FloatField()
    y = models.FloatField()
    w = models.FloatField()
    h = models.FloatField()
    source = models.CharField(max_length=5, choices=AnnotationSource.choices)
    score = models.FloatField(null=True, blank=True)
    serving_version = models.CharField(
        max_length=100, blank=True, help_text="The model version that proposed this box."
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every write.")
    is_deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(w__gt=0) & Q(h__gt=0), name="box_positive_size"),
            models.CheckConstraint(condition=Q(x__gte=0) & Q(y__gte=0), name="box_inside_origin"),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | (Q(score__gte=0) & Q(score__lte=1)),
                name="box_score_probability",
            ),
        ]
        indexes = [models.Index(fields=["image", "is_deleted"])]

    def __str__(self) -> str:
        return f"{self.category} [{self.x:.0f},{self.y:.0f},{self.w:.0f},{self.h:.0f}]"

    def snapshot(self) -> dict:
        """The state a revision records as ``before`` / ``after``."""
        return {
            "category": self.category.coco_id,
            "x": self.x,
            "y": self.y,
            "w": self.w,
            "h": self.h,
            "source": self.source,
            "score": self.score,
            "serving_version": self.serving_version,
            "is_deleted": self.is_deleted,
        }


class RevisionAction(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    DELETED = "deleted", "Deleted"


def snapshot_serving_version(snapshot: dict) -> str:
    """The serving version a box snapshot records. Revisions written before the field was
    renamed (migration 0005) call it ``model_version``; revisions are never rewritten."""
    return snapshot.get("serving_version", snapshot.get("model_version")) or ""


class AnnotationRevision(models.Model):
    """One write to a box: who, when, and the state before and after. Append-only."""

    annotation = models.ForeignKey(Annotation, on_delete=models.PROTECT, related_name="revisions")
    version = models.PositiveIntegerField()
    action = models.CharField(max_length=10, choices=RevisionAction.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    reason = models.CharField(max_length=200, blank=True, help_text="e.g. 'coco import'")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["annotation_id", "version"]
        constraints = [
            models.UniqueConstraint(fields=["annotation", "version"], name="one_revision_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.annotation_id} v{self.version} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("revisions are append-only: they cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("revisions are append-only: they cannot be deleted")
