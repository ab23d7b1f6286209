"""``fetch_weights``: torchvision's published weights into the torch hub cache, through
torchvision's own weights enum, hash checked; a clear error where it cannot download."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
import torch
from django.core.management import CommandError, call_command

from ml_backend import weights
from ml_backend.cli import main

NAME = "fasterrcnn_mobilenet_v3_large_fpn_coco"


def published_file(folder, tensors: dict, hash_prefix: str | None = None):
    """A weights file named as torchvision names its files: ``<stem>-<sha256 prefix>.pth``."""
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    data = buffer.getvalue()
    prefix = hash_prefix or hashlib.sha256(data).hexdigest()[:8]
    path = folder / f"fake_fasterrcnn-{prefix}.pth"
    path.write_bytes(data)
    return path


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache (TORCH_HOME) and a folder to serve files from."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    served = tmp_path / "served"
    served.mkdir()
    return served


def serve(monkeypatch, url: str) -> None:
    monkeypatch.setattr(weights.PUBLISHED[NAME].value, "url", url)


def test_fetch_downloads_through_the_enum_checks_the_hash_and_training_reads_it(hub, monkeypatch):
    source = published_file(hub, {"w": torch.arange(4.0)})
    serve(monkeypatch, source.as_uri())
    with pytest.raises(weights.WeightsUnavailable, match="not found in the torch hub cache"):
        weights.published_state_dict(NAME)

    path = weights.fetch_weights(NAME, progress=False)

    assert path == weights.cached_path(NAME) and path.name == source.name
    assert path.read_bytes() == source.read_bytes()
    assert torch.equal(weights.published_state_dict(NAME)["w"], torch.arange(4.0))
    assert weights.fetch_weights(NAME, progress=False) == path, "a second fetch keeps the checked file"


def test_a_file_that_does_not_match_its_published_hash_is_refused(hub, monkeypatch):
    source = published_file(hub, {"w": torch.ones(3)}, hash_prefix="0badc0de")
    serve(monkeypatch, source.as_uri())
    with pytest.raises(weights.WeightsUnavailable, match="refused: invalid hash value"):
        weights.fetch_weights(NAME, progress=False)
    assert not weights.cached_path(NAME).exists()

    weights.cached_path(NAME).parent.mkdir(parents=True, exist_ok=True)
    weights.cached_path(NAME).write_bytes(source.read_bytes())  # damaged or replaced in the cache
    with pytest.raises(weights.WeightsUnavailable, match="does not start with the published prefix 0badc0de"):
        weights.published_state_dict(NAME)


def test_no_network_says_it_cannot_download_and_what_to_do(hub, monkeypatch, capsys):
    serve(monkeypatch, "http://127.0.0.1:9/models/fake_fasterrcnn-12345678.pth")  # nothing listens there
    with pytest.raises(weights.WeightsUnavailable) as exc:
        weights.fetch_weights(NAME, progress=False)
    message = str(exc.value)
    assert "cannot download http://127.0.0.1:9/models/fake_fasterrcnn-12345678.pth" in message
    assert "no internet access" in message and str(weights.cached_path(NAME).parent) in message

    with pytest.raises(SystemExit) as exit_:
        main(["fetch-weights", NAME])
    assert exit_.value.code == 2 and "cannot download" in capsys.readouterr().err
    with pytest.raises(CommandError, match="cannot download"):
        call_command("fetch_weights", NAME, verbosity=0)


def test_cli_and_manage_py_fetch(hub, monkeypatch, capsys):
    source = published_file(hub, {"w": torch.zeros(2)})
    serve(monkeypatch, source.as_uri())
    assert main(["fetch-weights", NAME]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["path"] == str(weights.cached_path(NAME)) and summary["bytes"] == source.stat().st_size
    out = io.StringIO()
    call_command("fetch_weights", NAME, stdout=out)
    assert str(weights.cached_path(NAME)) in out.getvalue()


def test_unknown_names_list_the_known_ones():
    with pytest.raises(weights.WeightsUnavailable, match="known: fasterrcnn_mobilenet_v3_large_fpn_coco, "):
        weights.fetch_weights("yolo")
