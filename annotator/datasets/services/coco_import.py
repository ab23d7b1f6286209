"""Importing a COCO detection file and its images (FracAtlas, phantoms, any COCO export).

The COCO file is validated whole before anything is written; a bad COCO file, or a
``file_name`` that would leave the images folder, refuses the import. An image file that
is missing, cannot be decoded or has another size than the COCO file says is skipped and
reported (``strict``: it refuses the import). The import runs in one transaction whose
files are removed again if it fails: a refused import leaves the dataset as it was.

Pixel-identical files become one image with one ``ImageCopy`` per name; their boxes are
matched (``copies``) and copies that disagree make the image a label conflict. Splits may
come from lists (``splits``). Every import returns and records a report
(``import_report``) accounting for every file and box. Re-running an import adds nothing
twice: images are matched by pixel digest, and boxes come only with a newly stored image.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath, PureWindowsPath

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotator.datasets.models import (
    Category,
    CopyVerdict,
    Dataset,
    Image,
    ImageCopy,
    ImageSource,
    ImportRecord,
    ReviewStatus,
    Split,
    ValidationSplitFrozen,
)
from annotator.datasets.services.annotations import InvalidBox, NewBox, create_boxes, validate_box
from annotator.datasets.services.copies import CopyBox, CopyRead, Reconciliation, reconcile
from annotator.datasets.services.import_report import ImportReport
from annotator.datasets.services.ingest import (
    announce_images_added,
    file_journal,
    store_decoded,
    stored_suffix,
)
from annotator.datasets.services.membership import InvalidCategory, resolve_category
from annotator.datasets.services.splits import evaluation_split, read_split_lists
from annotator.errors import InvalidInput
from annotator.imaging import ImageRejected, decode_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}
MAX_REPORTED_ERRORS = 10


class CocoImportError(InvalidInput):
    """The import was refused; the message names the file and the reason."""


class FileNotFound(CocoImportError):
    """A listed image that is not in the images folder (or not there once): skipped,
    unless the import is strict."""


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


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def load_coco_json(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CocoImportError(f"{path}: cannot be read: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CocoImportError(f"{path}: is not valid JSON: {exc}") from exc
    except RecursionError:
        raise CocoImportError(f"{path}: is nested too deeply to be a COCO file") from None
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
    names: set[str] = set()
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
        elif name in names:
            errors.append(f"{where} repeats file_name {name!r}")
        elif not (_is_int(width) and _is_int(height) and width > 0 and height > 0):
            errors.append(f"{where} ({name}) needs positive integer width and height")
        else:
            labeled = entry.get("status") not in ReviewStatus.unread()
            images[image_id] = CocoImage(image_id, name, width, height, labeled)
            names.add(name)

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
                raise FileNotFound(f"{file_name}: is not a file")
            return candidate
        if self._by_name is None:
            self._by_name = defaultdict(list)
            for path in self.all_files():
                self._by_name[path.name].append(path)
        matches = self._by_name.get(relative.name, [])
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise FileNotFound(f"{file_name}: not found under {self.root}")
        raise FileNotFound(f"{file_name}: several files under {self.root} have this name")


@dataclass(frozen=True)
class SourceFile:
    """One image file the import reads: a COCO image, or an unlisted file."""

    file_name: str  # the name the image keeps: COCO's file_name, or the path under the folder
    path: Path | None  # None when it could not be found
    verdict: str  # a CopyVerdict
    boxes: tuple[CopyBox, ...]
    size: tuple[int, int] | None  # (width, height) the COCO file gives
    listed_split: str  # the split its list names, or ""


@dataclass
class Group:
    """A stored image and the files carrying its pixels, with the split each file is in."""

    image: Image
    copies: list[tuple[SourceFile, str]]


@dataclass(frozen=True)
class ImportOptions:
    split: str = Split.TRAIN
    images_only: bool = False
    unlisted_as_negatives: bool = False
    strict: bool = False
    store_damaged: bool = False
    split_lists: dict[str, Path] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {**asdict(self), "split_lists": {k: str(v) for k, v in self.split_lists.items()}}


def _verdict(image: CocoImage, boxes: tuple, options: ImportOptions) -> str:
    if options.images_only or not image.labeled:
        return CopyVerdict.UNLABELED
    return CopyVerdict.FRACTURED if boxes else CopyVerdict.NEGATIVE


def _sources(coco: CocoFile, locator: ImageLocator, options: ImportOptions, split_of: dict[str, str]) -> list[SourceFile]:
    """Every file the import covers, COCO images first; refuses names that would leave
    the folder before anything is read."""
    sources = []
    for image in coco.images:
        try:
            path = locator.locate(image.file_name)
        except FileNotFound:
            path = None
        boxes = tuple(CopyBox(box.category_id, box.bbox) for box in coco.boxes_by_image.get(image.id, []))
        sources.append(SourceFile(
            image.file_name, path, _verdict(image, boxes, options), boxes, (image.width, image.height),
            split_of.get(PurePosixPath(image.file_name).name, ""),
        ))
    if options.unlisted_as_negatives:
        listed = {source.path.resolve() for source in sources if source.path}
        verdict = CopyVerdict.UNLABELED if options.images_only else CopyVerdict.NEGATIVE
        sources += [
            SourceFile(path.relative_to(locator.root).as_posix(), path, verdict, (), None, split_of.get(path.name, ""))
            for path in locator.all_files() if path.resolve() not in listed
        ]
    return sources


class _Import:
    """One run of ``import_coco``: reads each file once, keeps the report."""

    def __init__(self, dataset: Dataset, annotations_path: Path, locator: ImageLocator, options: ImportOptions,
                 report: ImportReport, journal):
        self.dataset, self.annotations_path, self.locator = dataset, annotations_path, locator
        self.options, self.report, self.journal = options, report, journal
        self.groups: dict[str, Group] = {}

    def where(self, source: SourceFile) -> str:
        return source.path.relative_to(self.locator.root).as_posix() if source.path else source.file_name

    def skip(self, source: SourceFile, reason: str) -> None:
        if self.options.strict:
            raise CocoImportError(f"{self.where(source)}: {reason} (--strict: nothing was imported)")
        self.report.skip_file(self.where(source), reason, len(source.boxes))

    def read(self, source: SourceFile) -> None:
        if source.path is None:
            self.skip(source, f"not found under {self.locator.root} (or several files have its name)")
            return
        try:
            data = source.path.read_bytes()
            decoded = decode_image(
                data, source.file_name, max_pixels=settings.MAX_IMAGE_PIXELS, allow_damaged=self.options.store_damaged
            )
        except (ImageRejected, OSError) as exc:
            self.skip(source, str(exc))
            return
        if source.size is not None and source.size != (decoded.width, decoded.height):
            self.skip(source, f"is {decoded.width}x{decoded.height} pixels (EXIF orientation applied) but "
                              f"{self.annotations_path.name} says {source.size[0]}x{source.size[1]}")
            return
        split = source.listed_split or self.options.split
        group = self.groups.get(decoded.sha256)
        if group is not None:
            group.copies.append((source, split))
            self.report.files.merged += 1
        elif (existing := Image.objects.filter(dataset=self.dataset, sha256=decoded.sha256).first()) is not None:
            self.report.files.present += 1
            self.report.present_files.append({"file": self.where(source), "image_id": existing.pk})
            self.report.skip_boxes(len(source.boxes), "the image is already in the dataset")
            return
        elif not self.store(source, decoded, data, split):
            return
        self.note_decoding(source, decoded)

    def store(self, source: SourceFile, decoded, data: bytes, split: str) -> bool:
        storage_name = PurePosixPath(source.file_name).with_suffix(stored_suffix(decoded)).as_posix()
        status = reconcile([CopyRead(source.file_name, source.verdict, source.boxes)]).status
        try:
            stored = store_decoded(
                self.dataset, decoded, data, source.file_name, source=ImageSource.COCO, split=split,
                status=status, storage_name=storage_name, journal=self.journal,
            )
        except ValidationSplitFrozen as exc:
            self.skip(source, " ".join(exc.messages))
            return False
        self.groups[decoded.sha256] = Group(stored.image, [(source, split)])
        self.report.files.stored += 1
        return True

    def note_decoding(self, source: SourceFile, decoded) -> None:
        where = self.where(source)
        if decoded.exif_orientation:
            self.report.exif_orientation.append({"file": where, "orientation": decoded.exif_orientation})
        if decoded.damaged:
            self.report.damaged.append({"file": where, "reason": decoded.damaged})
        if decoded.warnings:
            self.report.decode_warnings.append({"file": where, "warnings": list(decoded.warnings)})

    def settle(self, group: Group) -> Reconciliation:
        """Decide the image's label and split from all its copies and report the group."""
        image, copies = group.image, group.copies
        result = reconcile([CopyRead(source.file_name, source.verdict, source.boxes) for source, _ in copies])
        splits = {source.file_name: split for source, split in copies}
        kept_in = evaluation_split(splits.values())
        if (image.status, image.split, image.conflict) != (result.status, kept_in, result.conflict):
            image.status, image.split, image.conflict = result.status, kept_in, result.conflict
            image.save(update_fields=["status", "split", "conflict", "updated_at"])
        self.report.images_by_status[str(image.status)] += 1
        self.report.images_by_split[str(image.split)] += 1
        self.report.boxes.stored += len(result.boxes)
        self.report.boxes.merged += sum(len(kept.sources) - 1 for kept in result.boxes)
        self.report.boxes.conflicting += len(result.disputed())
        if len(copies) == 1:
            return result
        names = [source.file_name for source, _ in copies]
        self.report.duplicate_groups.append({
            "image_id": image.pk, "status": str(image.status), "split": str(image.split),
            "copies": [{"file": source.file_name, "verdict": source.verdict, "boxes": len(source.boxes),
                        "split": split, "listed_split": source.listed_split} for source, split in copies],
        })
        if result.conflict:
            self.report.conflicts.append(
                {"image_id": image.pk, "split": str(image.split), "files": names, "reason": result.conflict}
            )
        if len(set(splits.values())) > 1:
            self.report.leaks.append({"image_id": image.pk, "splits": splits, "kept_in": kept_in})
        for kept in result.matched():
            self.report.agreement.append({
                "image_id": image.pk, "box": list(kept.box.bbox),
                "copies": [names[copy] for copy, _, _ in kept.sources],
                "ious": [round(iou, 4) for _, _, iou in kept.sources[1:]],
            })
        return result

    def finish(self, categories: dict[int, Category], actor) -> list[int]:
        """Settle every group, store the kept boxes and the copies; the new image ids."""
        settled = [(group, self.settle(group)) for group in self.groups.values()]
        new_boxes = [NewBox(group.image, categories[kept.box.category], *kept.box.bbox)
                     for group, result in settled for kept in result.boxes]
        created = iter(create_boxes(new_boxes, actor=actor, reason=f"coco import: {self.annotations_path.name}"))
        copies = []
        for group, result in settled:
            stored_as = {}  # (copy, box) -> (annotation id, IoU with the kept box)
            for kept in result.boxes:
                annotation = next(created)
                stored_as.update({(copy, box): (annotation.pk, iou) for copy, box, iou in kept.sources})
            if len(group.copies) > 1:
                copies += [_copy_row(group.image, index, source, stored_as)
                           for index, (source, _) in enumerate(group.copies)]
        ImageCopy.objects.bulk_create(copies)
        return [group.image.pk for group in self.groups.values()]


def _copy_row(image: Image, index: int, source: SourceFile, stored_as: dict) -> ImageCopy:
    """The ``ImageCopy`` of one file: each of its boxes names the box it was stored as
    (``annotation``) and its IoU with that box (1 for the box kept itself)."""
    boxes = []
    for b, box in enumerate(source.boxes):
        annotation_id, iou = stored_as[(index, b)]
        boxes.append({"bbox": list(box.bbox), "category": box.category, "annotation": annotation_id,
                      "iou": round(iou, 4)})
    return ImageCopy(image=image, file_name=source.file_name, split=source.listed_split, verdict=source.verdict,
                     boxes=boxes)


def import_coco(
    annotations_path: Path,
    images_dir: Path,
    dataset_name: str,
    *,
    split: str = Split.TRAIN,
    images_only: bool = False,
    unlisted_as_negatives: bool = False,
    strict: bool = False,
    store_damaged: bool = False,
    split_lists: dict[str, Path] | None = None,
    actor=None,
) -> ImportReport:
    """Import ``annotations_path`` into the dataset named ``dataset_name`` (created if new)
    and record the report as an ``ImportRecord``.

    - ``split``: the split new images join when no split list names them.
    - ``images_only``: store images as unlabeled and ignore the boxes (an unlabeled pool).
    - ``unlisted_as_negatives``: also import image files under ``images_dir`` that the
      COCO file does not list, as negatives (FracAtlas lists only fractured images).
    - ``strict``: refuse the whole import at the first file that would be skipped.
    - ``store_damaged``: store JPEGs that end early as far as they decode, marked damaged.
    - ``split_lists``: ``{split: list file}`` (``splits.split_lists_in``); an image whose
      copies are listed in several splits is kept in the most evaluative one.
    """
    if split not in Split.values:
        raise CocoImportError(f"unknown split {split!r}; use one of {', '.join(Split.values)}")
    options = ImportOptions(str(split), images_only, unlisted_as_negatives, strict, store_damaged, dict(split_lists or {}))
    started_at = timezone.now()
    coco = parse_coco(load_coco_json(annotations_path), annotations_path)
    split_of = read_split_lists(options.split_lists, IMAGE_SUFFIXES)
    locator = ImageLocator(images_dir)
    sources = _sources(coco, locator, options, split_of)

    report = ImportReport(dataset=dataset_name, source=str(annotations_path), options=options.as_dict())
    report.files.total = len(sources)
    report.boxes.total = sum(len(source.boxes) for source in sources) + coco.crowd_skipped
    report.skip_boxes(coco.crowd_skipped, "crowd region (iscrowd=1), not a fracture box")
    source_names = {PurePosixPath(source.file_name).name for source in sources}
    report.listed_not_found = sorted(set(split_of) - source_names)
    if images_only:
        report.skip_boxes(sum(len(source.boxes) for source in sources), "images only: boxes are not imported")
        sources = [replace(source, boxes=()) for source in sources]

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
        run = _Import(dataset, annotations_path, locator, options, report, journal)
        for source in sources:
            run.read(source)
        announce_images_added(dataset.pk, run.finish(categories, actor))
        if not report.balanced():
            raise RuntimeError(f"the import report does not add up: {report.files} {report.boxes}")
        ImportRecord.objects.create(
            dataset=dataset, actor=actor, source=str(annotations_path), options=report.options,
            report=report.as_dict(), started_at=started_at, finished_at=timezone.now(),
        )
    return report
