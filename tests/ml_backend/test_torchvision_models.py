"""The torchvision engine's model builders: feature strides, anchors, batch norm."""

from __future__ import annotations

import torch

from ml_backend.engines.torchvision_engine import TorchvisionConfig, build_detector


def test_mobilenet_fpn_reads_strides_8_to_64_with_one_anchor_size_per_level():
    config = TorchvisionConfig(architecture="mobilenet_v3_large_fpn", min_size=256, max_size=256,
                               anchor_sizes=(16, 32, 64, 128))
    model = build_detector(config, num_categories=2).eval()
    with torch.no_grad():
        features = model.backbone(torch.zeros(1, 3, 256, 256))
    assert [f.shape[-1] for f in features.values()] == [32, 16, 8, 4]  # strides 8, 16, 32, 64
    assert model.rpn.anchor_generator.sizes == ((16,), (32,), (64,), (128,))
    assert {m.momentum for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.1}


def test_anchor_sizes_that_do_not_match_the_levels_go_on_every_level():
    config = TorchvisionConfig(architecture="mobilenet_v3_large_fpn", anchor_sizes=(8, 16, 32, 64, 128))
    model = build_detector(config, num_categories=1)
    assert model.rpn.anchor_generator.sizes == ((8, 16, 32, 64, 128),) * 4
    assert model.rpn.head.cls_logits.out_channels == 15  # 5 sizes x 3 aspect ratios


def test_resnet_fpn_keeps_one_anchor_size_per_level():
    model = build_detector(TorchvisionConfig(architecture="resnet50_fpn_v2"), num_categories=2)
    assert model.rpn.anchor_generator.sizes == ((16,), (32,), (64,), (128,), (256,))
