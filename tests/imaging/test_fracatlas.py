"""Real FracAtlas radiographs as shipped: EXIF orientation and JPEGs that end early.

The data sits in ``../shared/data/fracatlas`` from the repository root (or where
FRACATLAS_DIR points); a user's machine will not have it, so these tests then skip.
"""

from __future__ import annotations

import json
import os
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from annotator.imaging import ImageRejected, decode_image

FRACATLAS = Path(
    os.environ.get("FRACATLAS_DIR")
    or Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fracatlas"
)
COCO_FILE = FRACATLAS / "Annotations" / "COCO JSON" / "COCO_fracture_masks.json"
LIMIT = 50_000_000

pytestmark = pytest.mark.skipif(
    not FRACATLAS.is_dir(),
    reason=f"FracAtlas is not at {FRACATLAS} (set FRACATLAS_DIR to where it is)",
)

# What each EXIF orientation asks a viewer to do to the stored pixels, in numpy terms.
UPRIGHT = {
    3: lambda stored: np.rot90(stored, 2),
    6: lambda stored: np.rot90(stored, -1),
    8: lambda stored: np.rot90(stored, 1),
}
# Every file of the folder with an EXIF orientation other than 1.
ORIENTED = {
    "Fractured/IMG0002588.jpg": 3,
    "Fractured/IMG0002628.jpg": 8,
    "Non_fractured/IMG0000429.jpg": 8,
    "Non_fractured/IMG0000680.jpg": 6,
    "Non_fractured/IMG0001268.jpg": 6,
    "Non_fractured/IMG0001490.jpg": 8,
    "Non_fractured/IMG0001803.jpg": 6,
    "Non_fractured/IMG0001878.jpg": 8,
    "Non_fractured/IMG0002026.jpg": 6,
    "Non_fractured/IMG0002288.jpg": 3,
    "Non_fractured/IMG0002289.jpg": 3,
}
# Two of the 24 non-fractured files that lack their last bytes.
TRUNCATED = ["Non_fractured/IMG0004036.jpg", "Non_fractured/IMG0004076.jpg"]


def coco_size(file_name: str) -> tuple[int, int]:
    """(width, height) the COCO file gives: the size the annotators drew on."""
    images = json.loads(COCO_FILE.read_text())["images"]
    (entry,) = [image for image in images if image["file_name"] == file_name]
    return entry["width"], entry["height"]


def stored_pixels(data: bytes) -> np.ndarray:
    """The grayscale pixels as stored in the file, before any orientation is applied."""
    with Image.open(BytesIO(data)) as image:
        return np.asarray(image.convert("L"))


@pytest.mark.parametrize("relative", ORIENTED)
def test_exif_oriented_image_decodes_upright(relative):
    data = (FRACATLAS / "images" / relative).read_bytes()
    image = decode_image(data, Path(relative).name, max_pixels=LIMIT)
    np.testing.assert_array_equal(image.pixels, UPRIGHT[ORIENTED[relative]](stored_pixels(data)))
    assert image.exif_orientation == ORIENTED[relative]


@pytest.mark.parametrize("name", ["IMG0002588.jpg", "IMG0002628.jpg"])
def test_exif_oriented_fractured_image_has_the_size_the_boxes_were_drawn_on(name):
    data = (FRACATLAS / "images" / "Fractured" / name).read_bytes()
    image = decode_image(data, name, max_pixels=LIMIT)
    assert (image.width, image.height) == coco_size(name)


def test_img0002628_is_454_wide_and_373_high():
    data = (FRACATLAS / "images" / "Fractured" / "IMG0002628.jpg").read_bytes()
    image = decode_image(data, "IMG0002628.jpg", max_pixels=LIMIT)
    assert (image.width, image.height) == (454, 373)
    assert stored_pixels(data).shape == (454, 373)  # stored 373 wide, 454 high


@pytest.mark.parametrize("relative", TRUNCATED)
def test_truncated_file_is_refused_by_default(relative):
    data = (FRACATLAS / "images" / relative).read_bytes()
    name = Path(relative).name
    with pytest.raises(ImageRejected, match=rf"^{name} is not a readable JPEG image: .*truncated"):
        decode_image(data, name, max_pixels=LIMIT)


@pytest.mark.parametrize("relative", TRUNCATED)
def test_truncated_file_decodes_as_damaged_when_allowed(relative, monkeypatch):
    data = (FRACATLAS / "images" / relative).read_bytes()
    name = Path(relative).name
    image = decode_image(data, name, max_pixels=LIMIT, allow_damaged=True)
    assert image.damaged is not None and image.damaged.startswith(f"{name} is a damaged JPEG")
    assert "image file is truncated" in image.damaged
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what viewers show
    np.testing.assert_array_equal(image.pixels, stored_pixels(data))
