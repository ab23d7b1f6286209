"""The ``device`` setting: resolved in one place, refused when it cannot be honoured,
reported with each training run; checkpoints load whatever device wrote them.

CUDA is absent on the CI machine: where a test needs CUDA to *look* present it patches
``torch.cuda``'s queries, and says so. GPU training itself is checked by
``benchmarks/gpu_check.py`` on a machine with a GPU."""

from __future__ import annotations

import math

import pytest
import torch
import torch.serialization

from ml_backend.checkpoints import load_checkpoint, save_checkpoint
from ml_backend.contract import EngineConfig
from ml_backend.devices import (
    DeviceUnavailable,
    MixedPrecision,
    autocast_dtype,
    device_report,
    resolve_device,
    training_precision,
)
from ml_backend.registry import get_engine, load_engine
from tests.tiny_engine import TINY_TORCHVISION

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


@pytest.fixture
def fake_cuda(monkeypatch):
    """``torch.cuda`` answering as on a machine with ``count`` GPUs, the current one
    ``current``; nothing is ever put on them."""

    def install(count: int = 1, current: int = 0) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: current)

    return install


@no_cuda
def test_auto_is_the_cpu_without_cuda():
    assert resolve_device("auto") == torch.device("cpu")
    engine = get_engine("torchvision", category_ids=[1, 2], **TINY_TORCHVISION)
    assert engine.config.device == "auto" and engine.device == torch.device("cpu")
    assert {p.device for p in engine.model.parameters()} == {torch.device("cpu")}


def test_auto_and_cuda_take_the_current_gpu_where_there_is_one(fake_cuda):
    fake_cuda(count=4, current=2)
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 2)
    assert resolve_device("cuda:3") == torch.device("cuda", 3)
    assert resolve_device("cpu") == torch.device("cpu")


@no_cuda
@pytest.mark.parametrize("setting", ["cuda", "cuda:0"])
def test_asking_for_cuda_without_it_is_a_clear_error(setting):
    with pytest.raises(DeviceUnavailable, match=f"device '{setting}' asked for, but CUDA is not available"):
        resolve_device(setting)
    with pytest.raises(DeviceUnavailable, match="CUDA is not available"):
        get_engine("torchvision", device=setting, **TINY_TORCHVISION)


def test_a_gpu_index_the_machine_lacks_is_refused(fake_cuda):
    fake_cuda(count=1)
    with pytest.raises(DeviceUnavailable, match=r"'cuda:1' asked for, but this machine has 1 CUDA device"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("setting", ["gpu", "CPU", "cuda:", "cuda:x", "cuda:-1", "mps", "", " cpu", None, 0])
def test_a_malformed_setting_is_refused_when_the_config_is_built(setting):
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N"):
        EngineConfig(device=setting)
    with pytest.raises(ValueError, match="device must be"):
        get_engine("torchvision", device=setting)


@pytest.mark.parametrize(
    ("device_type", "capability", "dtype"),
    [
        ("cpu", None, None),  # CPU training stays float32
        ("cuda", (7, 0), torch.float16),  # V100
        ("cuda", (7, 5), torch.float16),  # T4
        ("cuda", (8, 0), torch.bfloat16),  # A100
        ("cuda", (8, 9), torch.bfloat16),  # L4
        ("cuda", (9, 0), torch.bfloat16),  # H100, H200
    ],
)
def test_the_autocast_dtype_follows_the_gpus_capability(device_type, capability, dtype):
    assert autocast_dtype(device_type, capability) == dtype


def test_only_float16_scales_gradients():
    assert MixedPrecision("cuda", torch.float16).name == "float16"
    for mixed in (MixedPrecision("cuda", torch.bfloat16), MixedPrecision("cpu", None)):
        assert not mixed.grad_scaler().is_enabled(), mixed.name


def test_cpu_training_is_float32_without_autocast():
    mixed = training_precision(torch.device("cpu"))
    assert mixed.dtype is None and mixed.name == "float32"
    with mixed.autocast():
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_a_training_run_records_where_it_ran(tiny_snapshot, tmp_path):
    engine = get_engine("torchvision", **TINY_TORCHVISION, device="cpu")
    checkpoint = engine.train(tiny_snapshot, None, 1, out_path=tmp_path / "w.pt")
    report = device_report(torch.device("cpu"))
    assert (checkpoint.device, checkpoint.device_name, checkpoint.precision) == (
        "cpu", report["device_name"], "float32"
    )
    assert report["device_name"], "the CPU model is named"
    assert checkpoint.to_json()["device"] == "cpu"
    training = load_checkpoint(checkpoint.path)["training"]
    assert (training["device"], training["device_name"], training["precision"]) == (
        "cpu", report["device_name"], "float32"
    )


def test_a_checkpoint_written_on_a_gpu_loads_on_the_cpu(trained_checkpoints, tmp_path, monkeypatch):
    """The file's tensors are tagged ``cuda:0``, as ``torch.save`` tags them on a GPU, and
    its config says ``device: cuda:0``: the engine maps the tensors to its own device and
    keeps its own setting."""
    source = load_checkpoint(trained_checkpoints("torchvision").path)
    source["config"] = {**source["config"], "device": "cuda:0"}
    written_on_gpu = tmp_path / "gpu.pt"
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        save_checkpoint(written_on_gpu, {k: v for k, v in source.items() if k != "format"})
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA device"):
            torch.load(written_on_gpu, weights_only=True)  # the tag is real

    engine = load_engine(written_on_gpu, device="cpu")
    assert engine.device == torch.device("cpu") and engine.config.device == "cpu"
    for key, value in engine.model.state_dict().items():
        assert value.device == torch.device("cpu"), key
        assert torch.equal(value, source["state_dict"][key]), key
    assert load_engine(written_on_gpu).config.device == "auto", "the loader's setting, not the file's"


@no_cuda
def test_the_cli_refuses_cuda_without_it_in_one_line(tiny_snapshot, tmp_path, capsys):
    from ml_backend.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", "--coco", str(tiny_snapshot.annotations), "--out", str(tmp_path / "w.pt"),
              "--iterations", "1", "--arch", "mobilenet_v3", "--device", "cuda"])
    assert exit_.value.code == 2
    assert "train: error: device 'cuda' asked for, but CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "w.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_detector_trains_under_autocast_as_on_a_gpu(dtype, tiny_snapshot, tmp_path, monkeypatch):
    """A GPU's training path, run on the CPU (which has autocast and a gradient scaler
    too): the losses computed under autocast, float16 with the scaler on, the weights
    kept float32, and the precision recorded."""
    import ml_backend.engines

    monkeypatch.setattr(ml_backend.engines, "training_precision", lambda device: MixedPrecision(device.type, dtype))
    engine = get_engine("torchvision", **TINY_TORCHVISION, device="cpu")
    under_autocast = []
    compute = engine._batch_losses

    def spy(images, targets):
        under_autocast.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return compute(images, targets)

    monkeypatch.setattr(engine, "_batch_losses", spy)
    checkpoint = engine.train(tiny_snapshot, None, 1, out_path=tmp_path / "w.pt")
    assert under_autocast == [dtype]
    assert checkpoint.precision == str(dtype).removeprefix("torch.")
    assert all(math.isfinite(record["loss"]) for record in checkpoint.loss_history)
    floating = {v.dtype for v in engine.model.state_dict().values() if v.is_floating_point()}
    assert floating == {torch.float32}
