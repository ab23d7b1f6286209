"""Intensity normalisation and box-aware augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml_backend.augment import Augmenter, AugmentSettings
from ml_backend.preprocessing import equalize_histogram, normalise, to_tensor


def test_percentile_window_ignores_hot_pixels_in_16_bit_images():
    rng = np.random.default_rng(0)
    image = rng.integers(1000, 1400, size=(64, 64)).astype(np.uint16)
    image[0, :5] = 65535  # a few saturated detector pixels
    out = normalise(image, "percentile", 0.5, 99.5)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert np.median(out) == pytest.approx(0.5, abs=0.05), "the body of the histogram fills the range"
    assert normalise(image, "range").max() == 1.0
    assert np.median(normalise(image, "range")) < 0.03, "plain scaling leaves the image dark"


def test_auto_scales_8_bit_by_range_and_deeper_by_percentile():
    eight = np.array([[0, 51], [102, 255]], dtype=np.uint8)
    np.testing.assert_allclose(normalise(eight), eight / 255.0, rtol=1e-6)
    sixteen = np.linspace(100, 200, 400).reshape(20, 20).astype(np.uint16)
    np.testing.assert_array_equal(normalise(sixteen), normalise(sixteen, "percentile"))


def test_equalisation_flattens_the_histogram_and_keeps_order():
    rng = np.random.default_rng(1)
    image = rng.beta(8, 2, size=(128, 128)).astype(np.float32)  # bunched near 0.8
    out = equalize_histogram(image)
    hist, _ = np.histogram(out, bins=10, range=(0, 1))
    assert hist.min() > 0.7 * hist.mean() and hist.max() < 1.3 * hist.mean()
    order = np.argsort(image, axis=None)
    assert np.all(np.diff(out.ravel()[order]) >= 0)


def test_constant_image_gives_zeros_not_nan():
    for mode in ("percentile", "range"):
        out = normalise(np.full((8, 8), 7, dtype=np.uint16), mode, equalize=True)
        assert np.all(out == 0.0)
    with pytest.raises(ValueError, match="2-D"):
        normalise(np.zeros((2, 2, 3), np.uint8))


def test_to_tensor_repeats_the_channel():
    tensor = to_tensor(np.eye(4, dtype=np.float32))
    assert tensor.shape == (3, 4, 4) and tensor.dtype == torch.float32
    assert torch.equal(tensor[0], tensor[2])


@pytest.mark.parametrize(
    "settings",
    [
        AugmentSettings(hflip=True, vflip=True, rotate_deg=0, brightness=0, contrast=0),
        AugmentSettings(hflip=True, vflip=False, rotate_deg=8, brightness=0, contrast=0),
    ],
)
def test_boxes_follow_the_pixels(settings):
    """A bright rectangle is drawn where the box is: after augmentation the box must
    still enclose the bright pixels, tightly."""
    torch.manual_seed(0)
    augmenter = Augmenter(settings)
    box = torch.tensor([[20.0, 30.0, 50.0, 44.0]])
    image = torch.zeros(1, 64, 96)
    image[:, 30:44, 20:50] = 1.0
    moved = set()
    for _ in range(12):
        out, boxes, labels = augmenter(image, box, torch.tensor([1]))
        ys, xs = torch.nonzero(out[0] > 0.5, as_tuple=True)
        bright = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        assert labels.tolist() == [1]
        assert torch.allclose(boxes[0], bright, atol=2.5), (boxes[0], bright)
        moved.add(tuple(boxes[0].round().tolist()))
    assert len(moved) > 1, "the transform is random"


def test_brightness_contrast_keep_range_and_boxes():
    torch.manual_seed(0)
    augmenter = Augmenter(AugmentSettings(hflip=False, rotate_deg=0, brightness=0.4, contrast=0.4))
    image = torch.rand(1, 32, 32)
    out, boxes, _ = augmenter(image, torch.tensor([[4.0, 4.0, 20.0, 20.0]]), torch.tensor([2]))
    assert 0.0 <= out.min() and out.max() <= 1.0 and not torch.equal(out, image)
    assert boxes.tolist() == [[4.0, 4.0, 20.0, 20.0]]
