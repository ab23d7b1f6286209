"""detectron2 model-zoo ``.pkl`` weights: read as numeric arrays only, never executed, in
the two layouts detectron2's checkpointer reads; and, where detectron2 is installed, a
new model starts from them with its own box predictor.

The reader needs no detectron2, so its safety is checked everywhere."""

from __future__ import annotations

import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from ml_backend.checkpoints import CheckpointError, UnsafeCheckpointError
from ml_backend.engines.detectron2_zoo import read_zoo_pickle


def write(path, data, protocol=pickle.DEFAULT_PROTOCOL):
    with open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=protocol)
    return path


def arrays():
    rng = np.random.default_rng(0)
    return {
        "backbone.bottom_up.stem.conv1.weight": rng.standard_normal((4, 3, 7, 7)).astype(np.float32),
        "backbone.bottom_up.stem.conv1.norm.running_mean": np.zeros(4, np.float32),
        "roi_heads.box_predictor.cls_score.bias": np.arange(81, dtype=np.float64),
        "num_batches_tracked": np.array(7, dtype=np.int64),
    }


@pytest.mark.parametrize("protocol", [2, 4, 5])  # 2: the py2-era zoo files; 5: out-of-band capable
def test_a_detectron2_zoo_file_reads_as_tensors(tmp_path, protocol):
    path = write(tmp_path / "model_final.pkl", {"model": arrays(), "__author__": "Detectron2 Model Zoo"}, protocol)
    checkpoint = read_zoo_pickle(path)
    assert checkpoint["__author__"] == "Detectron2 Model Zoo" and checkpoint["matching_heuristics"] is False
    assert set(checkpoint["model"]) == set(arrays())
    for name, array in arrays().items():
        tensor = checkpoint["model"][name]
        assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.from_numpy(array).dtype
        np.testing.assert_array_equal(tensor.numpy(), array)


def test_a_converted_file_keeps_its_matching_heuristics(tmp_path):
    """detectron2's conversion scripts (e.g. from torchvision) ask for name matching."""
    data = {"model": arrays(), "__author__": "torchvision", "matching_heuristics": True}
    assert read_zoo_pickle(write(tmp_path / "r50.pkl", data))["matching_heuristics"] is True


@pytest.mark.parametrize("layout", ["blobs", "flat", "ordered"])
def test_a_caffe2_file_is_matched_by_name_without_momentum_blobs(tmp_path, layout):
    blobs = {"res2_0_branch2a_w": np.ones((4, 4, 1, 1), np.float32), "res2_0_branch2a_w_momentum": np.zeros(1)}
    data = {"blobs": blobs, "cfg": "MODEL: ..."} if layout == "blobs" else blobs
    if layout == "ordered":
        data = OrderedDict(blobs)
    checkpoint = read_zoo_pickle(write(tmp_path / "R-50.pkl", data, protocol=2))
    assert checkpoint["__author__"] == "Caffe2" and checkpoint["matching_heuristics"] is True
    assert list(checkpoint["model"]) == ["res2_0_branch2a_w"]


@pytest.mark.parametrize("where", ["whole file", "inside the weights"])
def test_a_pickle_that_runs_code_is_refused_before_it_runs(tmp_path, pickle_payload, where):
    path = tmp_path / "model_final.pkl"
    if where == "whole file":
        marker = pickle_payload(path)
    else:
        evil = tmp_path / "evil.pkl"
        marker = pickle_payload(evil)

        class Embedded:
            def __reduce__(self):
                return pickle.loads, (evil.read_bytes(),)

        write(path, {"model": {**arrays(), "trap": Embedded()}, "__author__": "x"})
    with pytest.raises(UnsafeCheckpointError, match=r"model_final\.pkl: refused: it names (posix\.system|_pickle\.loads)"):
        read_zoo_pickle(path)
    assert not marker.exists(), "the pickle's code ran"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"model": {"w": np.array(["a", "b"], dtype=object)}, "__author__": "x"}, r"'w' is a array of object"),
        ({"model": {"w": np.array(["ab"])}, "__author__": "x"}, r"'w' is a array of <U2"),
        ({"model": {"w": [1.0, 2.0]}, "__author__": "x"}, r"'w' is a list, not a numeric array"),
        ({"model": [np.zeros(1)], "__author__": "x"}, r"weights are a list"),
        ([np.zeros(1)], r"holds a list, not a model-zoo dict"),
    ],
)
def test_anything_but_named_numeric_arrays_is_refused(tmp_path, data, reason):
    with pytest.raises(CheckpointError, match=reason):
        read_zoo_pickle(write(tmp_path / "w.pkl", data))


def test_a_damaged_or_missing_file_is_named(tmp_path):
    whole = write(tmp_path / "w.pkl", {"model": arrays(), "__author__": "x"}).read_bytes()
    (tmp_path / "cut.pkl").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pkl: not a readable model-zoo pickle"):
        read_zoo_pickle(tmp_path / "cut.pkl")
    with pytest.raises(CheckpointError, match=r"absent\.pkl: no such weights file"):
        read_zoo_pickle(tmp_path / "absent.pkl")


def test_a_new_detectron2_model_starts_from_zoo_weights_with_its_own_box_predictor(
    engine_configs, tiny_snapshot, tmp_path
):
    """A zoo file made, as detectron2's zoo files are, of numpy arrays under detectron2's
    names, for 3 classes: a 2-class model takes every tensor but the box predictor's."""
    pytest.importorskip("detectron2", reason="detectron2 is not installed here (it is on no package registry)")
    from ml_backend.registry import get_engine, load_engine

    config = engine_configs["detectron2"]
    three = get_engine("detectron2", category_ids=[1, 2, 3], **config)
    zoo = {name: t.cpu().numpy() for name, t in three.model.state_dict().items()}
    path = write(tmp_path / "model_final_zoo.pkl", {"model": zoo, "__author__": "Detectron2 Model Zoo"}, protocol=2)

    engine = get_engine("detectron2", **config, init=str(path))
    engine.train(tiny_snapshot, None, 0, out_path=tmp_path / "start.pt")
    state = engine.model.state_dict()
    predictor = "roi_heads.box_predictor."
    for name, value in state.items():
        if name.startswith(predictor):
            continue
        assert torch.equal(value, torch.from_numpy(zoo[name])), name
    assert state[predictor + "cls_score.weight"].shape[0] == 3  # 2 classes + background
    assert load_engine(tmp_path / "start.pt").config.init == str(path)


def test_detectron2_refuses_weights_of_which_nothing_fits(tmp_path, engine_configs):
    pytest.importorskip("detectron2", reason="detectron2 is not installed here (it is on no package registry)")
    from ml_backend.registry import get_engine

    path = write(tmp_path / "other.pkl", {"model": {"features.0.weight": np.ones((2, 2), np.float32)}, "__author__": "x"})
    with pytest.raises(CheckpointError, match=r"other\.pkl: none of its tensors fits detectron2/R50-FPN"):
        get_engine("detectron2", category_ids=[1, 2], **engine_configs["detectron2"], init=str(path))
