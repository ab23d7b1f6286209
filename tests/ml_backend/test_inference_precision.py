"""The torchvision engine's inference settings: bfloat16 compute agrees with float32 and
keeps float32 boxes; settings outside the known values are refused up front."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml_backend.coco_dataset import load_coco, load_samples, read_image
from ml_backend.registry import get_engine, load_engine
from tests.tiny_engine import TINY


@pytest.fixture
def images(tiny_snapshot) -> list[np.ndarray]:
    samples = load_samples(load_coco(tiny_snapshot.annotations), tiny_snapshot.images_dir)
    return [read_image(s.path) for s in samples[:4]]


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    return float((approx - exact).norm() / exact.norm())


@pytest.mark.parametrize("architecture", ["mobilenet_v3_large_fpn", "resnet50_fpn_v2"])
def test_bfloat16_features_and_head_outputs_match_float32(architecture, images):
    """The same feature maps, and for the same proposals the same class logits and box
    deltas, as float32 to within what bfloat16's 8 significant bits allow through a deep
    network: about 1 % on the features and up to 2.7 % on R50's logits here, against
    5 % allowed; random weights do for that. Whole detections are compared on a
    trained model in docs/benchmarks.md: one trained for a test's few iterations scores
    its boxes nearly alike, so their order is a coin toss in either precision."""
    engine = get_engine("torchvision", category_ids=[1, 2], **{**TINY, "architecture": architecture},
                        inference_precision="bfloat16")
    model = engine.model.eval()
    heads = model.roi_heads
    with torch.inference_mode():
        batch, _ = model.transform([engine._to_tensor(image) for image in images])
        exact_features = model.backbone(batch.tensors)
        proposals, _ = model.rpn(batch, exact_features)  # both precisions classify these

        def classify(features):
            pooled = heads.box_roi_pool(features, proposals, batch.image_sizes)
            return heads.box_predictor(heads.box_head(pooled))

        exact_logits, exact_deltas = classify(exact_features)
        with engine._compute_precision():
            features = model.backbone(batch.tensors)
            logits, deltas = classify(features)
    assert logits.dtype == deltas.dtype == torch.float32
    for level, exact in exact_features.items():
        assert features[level].dtype == torch.float32
        assert relative_error(features[level], exact) < 0.05, level
    assert relative_error(logits, exact_logits) < 0.05
    assert relative_error(deltas, exact_deltas) < 0.05
    assert relative_error(features["0"], exact_features["0"]) > 0, "bfloat16 was not used"


def test_bfloat16_boxes_are_decoded_in_float32(trained_checkpoints, images):
    """At 1024 px bfloat16 has a 4-pixel step above 512: decoded in bfloat16, every box
    edge (the image is not resized, so none is rescaled) would sit on that grid."""
    big = [np.kron(image, np.ones((8, 8), image.dtype)) for image in images[:1]]
    engine = load_engine(trained_checkpoints("torchvision").path, inference_precision="bfloat16",
                         min_size=big[0].shape[0], max_size=big[0].shape[0])
    boxes = torch.from_numpy(engine.predict(big)[0].boxes)
    assert len(boxes) > 0
    assert (boxes.bfloat16().float() != boxes).any()


@pytest.mark.parametrize("setting", ["inference_runtime", "inference_precision"])
def test_an_unknown_inference_setting_is_refused_with_its_name(setting):
    with pytest.raises(ValueError, match=f"{setting} must be one of .*'tensorrt'"):
        get_engine("torchvision", category_ids=[1], **{setting: "tensorrt"})
