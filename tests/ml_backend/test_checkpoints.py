"""Checkpoint files: atomic writes with their sha256, and nothing but tensors read back."""

from __future__ import annotations

import hashlib
import os
import pickle

import pytest
import torch

from ml_backend.checkpoints import (
    CheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
    read_weights,
    save_checkpoint,
    sha256_file,
)


def payload():
    return {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "category_ids": [1, 2], "note": None}


def test_save_returns_the_files_sha256_and_loads_back(tmp_path):
    path = tmp_path / "sub" / "weights.pt"
    digest = save_checkpoint(path, payload())
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest() == sha256_file(path)
    loaded = load_checkpoint(path, expected_sha256=digest)
    assert torch.equal(loaded["state_dict"]["w"], payload()["state_dict"]["w"])
    assert loaded["category_ids"] == [1, 2] and loaded["note"] is None
    assert [p.name for p in path.parent.iterdir()] == ["weights.pt"], "no temporary file left"


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "weights.pt"
    first = save_checkpoint(path, payload())

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"state_dict": {"w": torch.zeros(1000)}})
    assert sha256_file(path) == first
    assert [p.name for p in tmp_path.iterdir()] == ["weights.pt"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_payload_is_refused_and_never_runs(tmp_path, pickle_payload):
    live = pickle_payload(tmp_path / "live.pkl")
    with open(tmp_path / "live.pkl", "rb") as handle:
        pickle.load(handle)
    assert live.exists(), "the payload is real: plain unpickling runs it"

    for name, dump in (("plain.pkl", pickle.dump), ("torch.pt", torch.save)):
        marker = pickle_payload(tmp_path / name, dump)
        with pytest.raises(UnsafeCheckpointError, match=f"{name}: refused"):
            read_weights(tmp_path / name)
        assert not marker.exists()


def test_wrong_digest_missing_file_and_foreign_format_are_named(tmp_path):
    path = tmp_path / "weights.pt"
    save_checkpoint(path, payload())
    with pytest.raises(CheckpointError, match="differs from expected"):
        load_checkpoint(path, expected_sha256="0" * 64)
    with pytest.raises(CheckpointError, match="missing.pt: no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")
    bare = tmp_path / "bare.pt"
    torch.save({"w": torch.ones(2)}, bare)
    assert torch.equal(read_weights(bare)["w"], torch.ones(2))
    with pytest.raises(CheckpointError, match="bare.pt: not an ml_backend checkpoint"):
        load_checkpoint(bare)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UnsafeCheckpointError, match="garbage.pt: refused"):
        read_weights(garbage)
