"""Importing a COCO detection file and its images (FracAtlas, phantoms, any COCO export).

The whole file is validated before anything is written, and the import runs in one
transaction whose files are removed again if it fails: a refused import leaves the
dataset exactly as it was. Re-running an import adds nothing twice (images are matched
by pixel digest; boxes come only with a newly stored image).
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from django.db import transaction

from annotator.imaging import ImageRejected
from annotator.models import Dataset, ImageSource, ReviewStatus, Split
from annotator.services.annotations import InvalidBox, NewBox, create_boxes, validate_box
from annotator.services.datasets import InvalidCategory, resolve_category
from annotator.services.ingest import file_journal, store_image
from annotator.tasks import enqueue_proposals_for_new_images

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}
MAX_REPORTED_ERRORS = 10
# Statuses our export writes for images nobody has finished reading: no boxes there
# means "not read yet", not "no fracture".
UNREAD_STATUSES = {
    ReviewStatus.UNLABELED, ReviewStatus.PROPOSED, ReviewStatus.IN_REVIEW, ReviewStatus.SKIPPED
}


class CocoImportError(ValueError):
    """The import was refused; the message names the file and the reason."""


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    width: int
    height: int
    labeled: bool = True  # False when our own export marked the image as not yet read


@dataclass(frozen=True)
class CocoBox:
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]


@dataclass
class CocoFile:
    images: list[CocoImage]
    categories: dict[int, dict]
    boxes_by_image: dict[int, list[CocoBox]]
    crowd_skipped: int = 0


@dataclass
class ImportReport:
    dataset: str
    images_created: int = 0
    images_existing: int = 0
    negatives_created: int = 0
    boxes_created: int = 0
    crowd_boxes_skipped: int = 0
    categories: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"dataset {self.dataset!r}: {self.images_created} images added "
            f"({self.negatives_created} negatives), {self.images_existing} already present, "
            f"{self.boxes_created} boxes added, {self.crowd_boxes_skipped} crowd boxes skipped; "
            f"categories: {', '.join(self.categories)}"
        )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) and math.isfinite(value)


def load_coco_json(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CocoImportError(f"{path}: cannot be read: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CocoImportError(f"{path}: is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CocoImportError(f"{path}: the top level must be a JSON object")
    return data


def parse_coco(data: dict, source: Path) -> CocoFile:
    """Check structure, ids and every box; raise one error listing the first problems."""
    errors: list[str] = []
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise CocoImportError(f"{source}: '{key}' must be a list")
    raw_annotations = data.get("annotations", [])
    if not isinstance(raw_annotations, list):
        raise CocoImportError(f"{source}: 'annotations' must be a list")

    images: dict[int, CocoImage] = {}
    for index, entry in enumerate(data["images"]):
        where = f"images[{index}]"
        if not isinstance(entry, dict):
            errors.append(f"{where} is not an object")
            continue
        image_id, name = entry.get("id"), entry.get("file_name")
        width, height = entry.get("width"), entry.get("height")
        if not _is_int(image_id):
            errors.append(f"{where} has no integer id")
        elif image_id in images:
            errors.append(f"{where} repeats image id {image_id}")
        elif not isinstance(name, str) or not name.strip():
            errors.append(f"{where} has no file_name")
        elif not (_is_int(width) and _is_int(height) and width > 0 and height > 0):
            errors.append(f"{where} ({name}) needs positive integer width and height")
        else:
            labeled = entry.get("status") not in UNREAD_STATUSES
            images[image_id] = CocoImage(image_id, name, width, height, labeled)

    categories: dict[int, dict] = {}
    for index, entry in enumerate(data["categories"]):
        where = f"categories[{index}]"
        if not isinstance(entry, dict) or not _is_int(entry.get("id")):
            errors.append(f"{where} has no integer id")
        elif entry["id"] in categories:
            errors.append(f"{where} repeats category id {entry['id']}")
        elif not isinstance(entry.get("name"), str) or not entry["name"].strip():
            errors.append(f"{where} has no name")
        else:
            categories[entry["id"]] = entry

    boxes: dict[int, list[CocoBox]] = defaultdict(list)
    crowd = 0
    for index, entry in enumerate(raw_annotations):
        where = f"annotations[{index}]"
        if not isinstance(entry, dict):
            errors.append(f"{where} is not an object")
            continue
        image = images.get(entry.get("image_id"))
        bbox = entry.get("bbox")
        if image is None:
            errors.append(f"{where} points to unknown image id {entry.get('image_id')!r}")
        elif entry.get("category_id") not in categories:
            errors.append(f"{where} points to unknown category id {entry.get('category_id')!r}")
        elif not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))):
            errors.append(f"{where} bbox must be four finite numbers, got {bbox!r}")
        elif entry.get("iscrowd", 0) == 1:
            crowd += 1
        else:
            try:
                validate_box(*bbox, image.width, image.height)
            except InvalidBox as exc:
                errors.append(f"{where} ({image.file_name}): {exc}")
                continue
            boxes[image.id].append(CocoBox(image.id, entry["category_id"], tuple(bbox)))

    if errors:
        more = f" (and {len(errors) - MAX_REPORTED_ERRORS} more)" if len(errors) > MAX_REPORTED_ERRORS else ""
        raise CocoImportError(f"{source}: " + "; ".join(errors[:MAX_REPORTED_ERRORS]) + more)
    return CocoFile(list(images.values()), categories, dict(boxes), crowd)


class ImageLocator:
    """Finds image files under one folder, refusing anything that would leave it.

    A ``file_name`` is looked up as a relative path first; FracAtlas-style files whose
    ``file_name`` is a bare name kept in sub-folders (``images/Fractured/...``) are then
    found by a unique base name.
    """

    def __init__(self, root: Path):
        if not root.is_dir():
            raise CocoImportError(f"{root}: is not a folder")
        self.root = root.resolve()
        self._by_name: dict[str, list[Path]] | None = None

    def _inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.root)

    def all_files(self) -> list[Path]:
        found = []
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(folder) / name
                if path.suffix.lower() in IMAGE_SUFFIXES and self._inside(path):
                    found.append(path)
        return sorted(found)

    def locate(self, file_name: str) -> Path:
        if "\\" in file_name or PureWindowsPath(file_name).drive:
            raise CocoImportError(f"{file_name}: Windows-style paths are not accepted")
        relative = PurePosixPath(file_name)
        if relative.is_absolute():
            raise CocoImportError(f"{file_name}: absolute paths are refused")
        if ".." in relative.parts:
            raise CocoImportError(f"{file_name}: path traversal ('..') is refused")
        candidate = self.root / relative
        if os.path.lexists(candidate):
            if not self._inside(candidate):
                raise CocoImportError(f"{file_name}: a symbolic link that leaves {self.root} is refused")
            if not candidate.is_file():
                raise CocoImportError(f"{file_name}: is not a file")
            return candidate
        if self._by_name is None:
            self._by_name = defaultdict(list)
            for path in self.all_files():
                self._by_name[path.name].append(path)
        matches = self._by_name.get(relative.name, [])
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise CocoImportError(f"{file_name}: not found under {self.root}")
        raise CocoImportError(f"{file_name}: several files under {self.root} have this name")


def import_coco(
    annotations_path: Path,
    images_dir: Path,
    dataset_name: str,
    *,
    split: str = Split.TRAIN,
    images_only: bool = False,
    unlisted_as_negatives: bool = False,
    actor=None,
) -> ImportReport:
    """Import ``annotations_path`` into the dataset named ``dataset_name`` (created if new).

    - ``split``: the split the new images join.
    - ``images_only``: store images as unlabeled and ignore the boxes (an unlabeled pool).
    - ``unlisted_as_negatives``: also import image files under ``images_dir`` that the
      COCO file does not list, as negatives (FracAtlas lists only fractured images).
    """
    if split not in Split.values:
        raise CocoImportError(f"unknown split {split!r}; use one of {', '.join(Split.values)}")
    coco = parse_coco(load_coco_json(annotations_path), annotations_path)
    locator = ImageLocator(images_dir)
    located = {image.id: locator.locate(image.file_name) for image in coco.images}
    unlisted: list[Path] = []
    if unlisted_as_negatives:
        listed = {path.resolve() for path in located.values()}
        unlisted = [path for path in locator.all_files() if path.resolve() not in listed]

    report = ImportReport(dataset=dataset_name, crowd_boxes_skipped=coco.crowd_skipped)
    with file_journal() as journal, transaction.atomic():
        dataset, _ = Dataset.objects.get_or_create(name=dataset_name)
        try:
            categories = {
                coco_id: resolve_category(dataset, entry["name"], coco_id, entry.get("supercategory", ""))
                for coco_id, entry in coco.categories.items()
            }
        except InvalidCategory as exc:
            raise CocoImportError(f"{annotations_path}: {exc}") from exc
        report.categories = [category.name for category in categories.values()]

        def store(path: Path, file_name: str, status: str):
            try:
                return store_image(
                    dataset,
                    path.read_bytes(),
                    file_name,
                    source=ImageSource.COCO,
                    split=split,
                    status=status,
                    storage_name=file_name,
                    journal=journal,
                )
            except (ImageRejected, OSError) as exc:
                raise CocoImportError(f"{path}: {exc}") from exc

        new_boxes: list[NewBox] = []
        new_image_ids: list[int] = []
        for image in coco.images:
            boxes = coco.boxes_by_image.get(image.id, [])
            if images_only or not image.labeled:
                status = ReviewStatus.UNLABELED
            else:
                status = ReviewStatus.LABELED if boxes else ReviewStatus.NEGATIVE
            stored = store(located[image.id], image.file_name, status)
            if (stored.image.width, stored.image.height) != (image.width, image.height):
                raise CocoImportError(
                    f"{located[image.id]}: is {stored.image.width}x{stored.image.height} pixels "
                    f"but {annotations_path} says {image.width}x{image.height}"
                )
            if not stored.created:
                report.images_existing += 1
                continue
            report.images_created += 1
            new_image_ids.append(stored.image.pk)
            report.negatives_created += status == ReviewStatus.NEGATIVE
            if not images_only:
                new_boxes.extend(
                    NewBox(stored.image, categories[box.category_id], *box.bbox) for box in boxes
                )
        for path in unlisted:
            file_name = path.relative_to(locator.root).as_posix()
            status = ReviewStatus.UNLABELED if images_only else ReviewStatus.NEGATIVE
            stored = store(path, file_name, status)
            if stored.created:
                new_image_ids.append(stored.image.pk)
            report.images_created += stored.created
            report.images_existing += not stored.created
            report.negatives_created += stored.created and status == ReviewStatus.NEGATIVE
        report.boxes_created = len(
            create_boxes(new_boxes, actor=actor, reason=f"coco import: {annotations_path.name}")
        )
        enqueue_proposals_for_new_images(dataset.pk, new_image_ids)
    return report
