"""One pixel rule for training and serving: a MONOCHROME1 image gives the model the same
input tensor whether a training run reads it from a snapshot or the platform serves it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ml_backend.coco_dataset import read_image
from ml_backend.contract import Snapshot
from ml_backend.preprocessing import model_view
from ml_backend.registry import get_engine
from tests.tiny_engine import TINY_TORCHVISION

NO_AUGMENT = {"aug_hflip": False, "aug_rotate_deg": 0.0, "aug_brightness": 0.0, "aug_contrast": 0.0}
BIT_DEPTH = 12


def test_model_view_inverts_monochrome1_within_its_bit_depth():
    pixels = np.array([[0, 100, 4095]], dtype=np.uint16)
    np.testing.assert_array_equal(model_view(pixels, "MONOCHROME1", 12), [[4095, 3995, 0]])
    np.testing.assert_array_equal(model_view(pixels, "MONOCHROME1"), [[65535, 65435, 61440]])
    np.testing.assert_array_equal(model_view(np.array([0, 255], np.uint8), "MONOCHROME1"), [255, 0])
    assert model_view(pixels, "MONOCHROME2", 12) is pixels
    with pytest.raises(ValueError, match="bit_depth 17"):
        model_view(pixels, "MONOCHROME1", 17)


@pytest.fixture
def monochrome1_snapshot(tiny_snapshot, tmp_path) -> tuple[Snapshot, dict[str, np.ndarray]]:
    """Four phantoms stored as a 12-bit MONOCHROME1 detector writes them (bone dark),
    their COCO entries saying so, as the platform's snapshots do; and each one's
    MONOCHROME2 original."""
    data = json.loads(tiny_snapshot.annotations.read_text())
    data["images"] = data["images"][:4]
    kept = {image["id"] for image in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in kept]
    originals = {}
    for image in data["images"]:
        original = read_image(tiny_snapshot.images_dir / image["file_name"]) >> (16 - BIT_DEPTH)
        stored = (1 << BIT_DEPTH) - 1 - original
        Image.fromarray(stored.astype(np.uint16)).save(tmp_path / image["file_name"])
        image.update(photometric_interpretation="MONOCHROME1", bit_depth=BIT_DEPTH)
        originals[image["file_name"]] = original.astype(np.uint16)
    annotations = tmp_path / "monochrome1.json"
    annotations.write_text(json.dumps(data))
    return Snapshot(annotations, tmp_path), originals


def test_training_and_serving_feed_the_model_the_same_tensor(monochrome1_snapshot, tmp_path):
    snapshot, originals = monochrome1_snapshot
    engine = get_engine("torchvision", **{**TINY_TORCHVISION, **NO_AUGMENT, "batch_size": 4})
    trained_on = []
    batch_losses = engine._batch_losses

    def recording(images, targets):
        trained_on.extend(image.detach().clone() for image in images)
        return batch_losses(images, targets)

    engine._batch_losses = recording
    engine.train(snapshot, None, 1, out_path=tmp_path / "w.pt")

    served = []
    predict_tensors = engine._predict_tensors

    def recording_predict(images):
        served.extend(image.clone() for image in images)
        return predict_tensors(images)

    engine._predict_tensors = recording_predict
    # serving: decoded stored pixels -> model_view with the image's photometric and bit
    # depth (what annotator does) -> Engine.predict
    names = sorted(originals)
    stored = [read_image(snapshot.images_dir / name) for name in names]
    engine.predict([model_view(pixels, "MONOCHROME1", BIT_DEPTH) for pixels in stored])
    reference = [engine._to_tensor(originals[name]) for name in names]  # bone bright, as drawn

    assert len(trained_on) == 4
    for served_tensor, reference_tensor in zip(served, reference, strict=True):
        torch.testing.assert_close(served_tensor, reference_tensor, rtol=0, atol=0)
    unmatched = [
        i for i, tensor in enumerate(trained_on)
        if not any(torch.equal(tensor, s) for s in served)
    ]
    assert not unmatched, f"training saw {len(unmatched)} images differently from serving"
