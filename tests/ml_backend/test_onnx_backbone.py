"""The torchvision engine with its backbone in ONNX Runtime: the same detections as
PyTorch, and a fresh export whenever the weights change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml_backend.coco_dataset import load_coco, load_samples, read_image
from ml_backend.engines.onnx_backbone import OnnxBackbone
from ml_backend.registry import load_engine


@pytest.fixture
def images(tiny_snapshot) -> list[np.ndarray]:
    samples = load_samples(load_coco(tiny_snapshot.annotations), tiny_snapshot.images_dir)
    return [read_image(s.path) for s in samples[:3]]


def assert_same_detections(a, b):
    for x, y in zip(a, b, strict=True):
        assert len(x.boxes) == len(y.boxes)
        np.testing.assert_allclose(x.boxes, y.boxes, atol=1e-2)
        np.testing.assert_allclose(x.class_probs, y.class_probs, atol=1e-4)
        np.testing.assert_allclose(x.embedding, y.embedding, atol=1e-4)


def test_onnxruntime_backbone_gives_the_detections_of_pytorch(trained_checkpoints, images):
    checkpoint = trained_checkpoints("torchvision")
    eager = load_engine(checkpoint.path)
    onnx = load_engine(checkpoint.path, inference_runtime="onnxruntime")
    assert_same_detections(eager.predict(images), onnx.predict(images))
    assert isinstance(onnx._inference_backbone(), OnnxBackbone)
    assert eager._inference_backbone() is eager.model.backbone


def test_training_after_an_export_re_exports_the_new_weights(trained_checkpoints, tiny_snapshot, images, tmp_path):
    checkpoint = trained_checkpoints("torchvision")
    engine = load_engine(checkpoint.path, inference_runtime="onnxruntime")
    engine.predict(images)
    first_export = engine._inference_backbone()
    assert engine._inference_backbone() is first_export  # unchanged weights: no re-export
    engine.train(tiny_snapshot, checkpoint.path, 2, out_path=tmp_path / "more.pt")
    assert engine._inference_backbone() is not first_export
    assert_same_detections(load_engine(tmp_path / "more.pt").predict(images), engine.predict(images))
    trained_export = engine._inference_backbone()
    with torch.no_grad():  # weights changed in place, as an optimiser step does mid-training
        next(engine.model.backbone.parameters()).mul_(0.5)
    assert engine._inference_backbone() is not trained_export

