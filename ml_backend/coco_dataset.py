"""Reading a COCO snapshot (annotation file + image folder) into training samples."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

from ml_backend.preprocessing import MONOCHROME2, model_view


class DatasetError(Exception):
    """A COCO file or image could not be read; the message names the file and why."""


@dataclass(frozen=True)
class Sample:
    """One image of a snapshot with its boxes (``xyxy`` pixels) and COCO category ids.
    ``is_new`` marks images the snapshot flags ``"new": true`` (labelled since the
    weights being fine-tuned were trained); training may sample them more often.
    ``photometric`` and ``bit_depth`` come from the image entry's
    ``photometric_interpretation`` and ``bit_depth`` (the platform's snapshots carry
    them; default MONOCHROME2, the file's own depth): ``load_pixels`` needs them."""

    image_id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float32
    category_ids: np.ndarray  # (N,) int64
    is_new: bool = False
    photometric: str = MONOCHROME2
    bit_depth: int | None = None


def read_image(path: Path) -> np.ndarray:
    """A PNG (8- or 16-bit grayscale; colour is converted to luminance) as a 2-D array,
    uint8 or uint16."""
    try:
        with Image.open(path) as img:
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(img)
                if array.dtype != np.uint16:
                    array = np.clip(array, 0, np.iinfo(np.uint16).max).astype(np.uint16)
                return array
            return np.asarray(img.convert("L"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read image: {exc}") from None


def load_pixels(sample: Sample) -> np.ndarray:
    """The sample's image as the model sees it (``preprocessing.model_view``): the rule
    serving applies to the same image, so training and inference agree."""
    return model_view(read_image(sample.path), sample.photometric, sample.bit_depth)


def load_coco(annotations: Path) -> COCO:
    """Parse a COCO annotation file with pycocotools, quietly, naming the file on error."""
    annotations = Path(annotations)
    if not annotations.is_file():
        raise DatasetError(f"{annotations}: no such COCO annotation file")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(annotations))
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise DatasetError(f"{annotations}: not a valid COCO annotation file: {exc!r}") from None


def category_ids_of(coco: COCO) -> list[int]:
    ids = sorted(coco.getCatIds())
    if not ids:
        raise DatasetError("the COCO file defines no categories")
    return ids


def load_samples(coco: COCO, images_dir: Path) -> list[Sample]:
    """Every image of ``coco`` (negatives included) with its non-crowd boxes."""
    samples = []
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        anns = [
            a
            for a in coco.imgToAnns.get(image_id, [])
            if not a.get("iscrowd", 0) and a["bbox"][2] > 0 and a["bbox"][3] > 0
        ]
        boxes = np.array(
            [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], dtype=np.float32
        ).reshape(-1, 4)
        labels = np.array([a["category_id"] for a in anns], dtype=np.int64)
        samples.append(
            Sample(
                image_id=int(image_id),
                path=Path(images_dir) / info["file_name"],
                width=int(info["width"]),
                height=int(info["height"]),
                boxes=boxes,
                category_ids=labels,
                is_new=bool(info.get("new", False)),
                photometric=str(info.get("photometric_interpretation") or MONOCHROME2),
                bit_depth=int(info["bit_depth"]) if info.get("bit_depth") else None,
            )
        )
    return samples
