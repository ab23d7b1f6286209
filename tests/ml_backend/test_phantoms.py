import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from ml_backend.phantoms import CATEGORIES, generate_dataset, image_rng, render_phantom


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("phantoms")
    return generate_dataset(out_dir, n=50, size=256, seed=7)


@pytest.fixture(scope="module")
def coco(dataset):
    return json.loads(dataset.read_text())


def test_same_seed_same_image_and_fractures():
    first = render_phantom(image_rng(3, 11), 256)
    second = render_phantom(image_rng(3, 11), 256)
    assert np.array_equal(first[0], second[0])
    assert first[1] == second[1]
    other = render_phantom(image_rng(4, 11), 256)
    assert not np.array_equal(first[0], other[0])


def test_image_does_not_depend_on_dataset_size(tmp_path):
    small = json.loads(generate_dataset(tmp_path / "small", n=3, seed=5).read_text())
    large = json.loads(generate_dataset(tmp_path / "large", n=6, seed=5).read_text())
    name = "phantom_5_00002.png"
    assert (tmp_path / "small" / "images" / name).read_bytes() == (
        tmp_path / "large" / "images" / name
    ).read_bytes()
    assert small["annotations"] == [a for a in large["annotations"] if a["image_id"] <= 3]


def test_annotations_are_valid_coco(dataset, coco):
    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO(str(dataset))
    assert len(api.getImgIds()) == 50
    assert api.getCatIds() == [1, 2]
    assert {"info", "licenses", "images", "annotations", "categories"} <= coco.keys()
    assert coco["categories"] == CATEGORIES
    for image in coco["images"]:
        assert (dataset.parent / "images" / image["file_name"]).is_file()
        assert (image["width"], image["height"]) == (256, 256)
    ids = [a["id"] for a in coco["annotations"]]
    assert len(set(ids)) == len(ids)
    for annotation in coco["annotations"]:
        assert annotation["iscrowd"] == 0
        x, y, w, h = annotation["bbox"]
        assert annotation["area"] == pytest.approx(w * h, abs=0.01)


def test_boxes_are_inside_images_and_large_enough(coco):
    assert coco["annotations"]
    for annotation in coco["annotations"]:
        x, y, w, h = annotation["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 256 and y + h <= 256
        assert min(w, h) >= 8


def test_both_categories_and_negatives_occur(coco):
    used = {a["category_id"] for a in coco["annotations"]}
    assert used == {1, 2}
    positive = {a["image_id"] for a in coco["annotations"]}
    negatives = len(coco["images"]) - len(positive)
    assert 0.1 * len(coco["images"]) <= negatives <= 0.5 * len(coco["images"])


def test_fracture_probability_controls_negatives():
    assert all(
        render_phantom(image_rng(2, i), 128, fracture_probability=0.0)[1] == [] for i in range(5)
    )
    assert all(render_phantom(image_rng(2, i), 128, fracture_probability=1.0)[1] for i in range(5))


def test_sixteen_bit_png_round_trip(dataset, coco):
    image, _ = render_phantom(image_rng(7, 0), 256)
    assert image.dtype == np.uint16 and image.max() > 255 and image.max() <= 4095
    with Image.open(dataset.parent / "images" / coco["images"][0]["file_name"]) as stored:
        assert stored.mode == "I;16"
        read = np.array(stored)
    assert read.dtype == np.uint16
    assert np.array_equal(read, image)


def test_eight_bit_option(tmp_path):
    path = generate_dataset(tmp_path, n=1, size=64, seed=1, bit_depth=8)
    with Image.open(path.parent / "images" / "phantom_1_00000.png") as stored:
        assert stored.mode == "L"
        assert np.array_equal(np.array(stored), render_phantom(image_rng(1, 0), 64, bit_depth=8)[0])


def test_rectangular_size_is_height_by_width():
    image, fractures = render_phantom(image_rng(0, 1), (300, 200), fracture_probability=1.0)
    assert image.shape == (300, 200)
    for fracture in fractures:
        x, y, w, h = fracture.bbox
        assert x + w <= 200 and y + h <= 300


def _mean_along(image: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    """Mean of the pixels nearest to points on the inner 80 % of a segment."""
    t = np.linspace(0.1, 0.9, 40)[:, None]
    points = np.rint(start + t * (end - start)).astype(int)
    return float(image[points[:, 1], points[:, 0]].astype(float).mean())


def test_fracture_gap_is_darker_than_the_bone_beside_it():
    checked = 0
    for index in range(20):
        image, fractures = render_phantom(image_rng(11, index), 256, fracture_probability=1.0)
        for fracture in fractures:
            if fracture.displacement != 0:
                continue  # a shifted fragment puts soft tissue beside the gap
            start, end = np.array(fracture.line[:2]), np.array(fracture.line[2:])
            direction = (end - start) / np.linalg.norm(end - start)
            normal = np.array([-direction[1], direction[0]])
            offset = normal * (fracture.gap_width + 3)
            gap = _mean_along(image, start, end)
            beside = [_mean_along(image, start + s * offset, end + s * offset) for s in (-1, 1)]
            above_air = min(beside) - np.percentile(image, 1)
            assert gap < min(beside) - 0.1 * above_air, (index, fracture, gap, beside)
            checked += 1
    assert checked >= 5
