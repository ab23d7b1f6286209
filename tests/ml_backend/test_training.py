"""The fine-tuning loop on real (tiny) phantoms: it learns, repeats, stops and replays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml_backend.coco_dataset import Sample
from ml_backend.contract import Snapshot
from ml_backend.registry import get_engine, load_engine
from ml_backend.training import draw_batch, sampling_weights, validation_map50

NO_AUGMENT = {"aug_hflip": False, "aug_rotate_deg": 0.0, "aug_brightness": 0.0, "aug_contrast": 0.0}


def subset(snapshot: Snapshot, tmp_path, image_ids: list[int]) -> Snapshot:
    """A snapshot of only ``image_ids``, on the same image folder."""
    data = json.loads(snapshot.annotations.read_text())
    data["images"] = [i for i in data["images"] if i["id"] in image_ids]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in image_ids]
    path = tmp_path / f"subset-{'-'.join(map(str, image_ids))}.json"
    path.write_text(json.dumps(data))
    return Snapshot(path, snapshot.images_dir)


def images_with_fractures(snapshot: Snapshot, n: int) -> list[int]:
    data = json.loads(snapshot.annotations.read_text())
    return sorted({a["image_id"] for a in data["annotations"]})[:n]


@pytest.mark.slow
def test_loss_decreases_when_overfitting_two_images(engine_configs, tiny_snapshot, tmp_path):
    snapshot = subset(tiny_snapshot, tmp_path, images_with_fractures(tiny_snapshot, 2))
    config = {**engine_configs["torchvision"], **NO_AUGMENT, "lr": 0.01}
    checkpoint = get_engine("torchvision", **config).train(
        snapshot, None, 30, out_path=tmp_path / "w.pt"
    )
    losses = [record["loss"] for record in checkpoint.loss_history]
    assert len(losses) == 30 and checkpoint.stop_reason == "iterations"
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.5 * first, f"loss went from {first:.3f} to {last:.3f}"


def test_same_seed_same_run(engine_configs, tiny_snapshot, tmp_path):
    def train(seed: int, name: str):
        engine = get_engine("torchvision", **{**engine_configs["torchvision"], "seed": seed})
        return engine.train(tiny_snapshot, None, 2, out_path=tmp_path / name)

    first, again, other = train(0, "a.pt"), train(0, "b.pt"), train(1, "c.pt")
    assert first.loss_history == again.loss_history and first.sha256 == again.sha256
    assert other.loss_history != first.loss_history


def test_time_limit_stops_after_the_current_iteration(engine_configs, tiny_snapshot, tmp_path):
    engine = get_engine("torchvision", **engine_configs["torchvision"], time_limit_s=0.0)
    checkpoint = engine.train(tiny_snapshot, None, 50, out_path=tmp_path / "w.pt")
    assert checkpoint.iterations == 1 and checkpoint.stop_reason == "time_limit"


def test_early_stop_on_validation_map50_keeps_the_best(engine_configs, tiny_snapshot, tmp_path):
    validation = subset(tiny_snapshot, tmp_path, images_with_fractures(tiny_snapshot, 2))
    snapshot = Snapshot(tiny_snapshot.annotations, tiny_snapshot.images_dir, validation.annotations)
    reports = []
    config = {**engine_configs["torchvision"], "eval_every": 1, "early_stop_patience": 1}
    checkpoint = get_engine("torchvision", **config).train(
        snapshot, None, 12, reports.append, out_path=tmp_path / "w.pt"
    )
    scores = [r.val_map50 for r in reports]
    assert all(s is not None and 0.0 <= s <= 1.0 for s in scores)
    assert checkpoint.stop_reason == "early_stop" and checkpoint.iterations == len(reports) < 12
    assert scores[-1] <= max(scores[:-1]), "stopped without a check that failed to improve"
    assert checkpoint.best_val_map50 == max(scores)
    restored = load_engine(checkpoint.path)
    assert validation_map50(
        restored.predict, validation.annotations, snapshot.images_dir
    ) == pytest.approx(checkpoint.best_val_map50), "the checkpoint holds the best weights"


def test_replay_draws_every_image_and_weights_new_ones():
    samples = [
        Sample(i, None, 8, 8, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), is_new=i >= 8)
        for i in range(10)
    ]
    weights = sampling_weights(samples, new_image_weight=4.0)
    np.testing.assert_allclose(weights[:8], 1 / 16)
    np.testing.assert_allclose(weights[8:], 4 / 16)
    rng = np.random.default_rng(0)
    drawn = [s.image_id for _ in range(2000) for s in draw_batch(samples, 2, weights, rng)]
    counts = np.bincount(drawn, minlength=10)
    assert counts.min() > 0, "every earlier image is replayed"
    assert counts[8:].mean() > 2.5 * counts[:8].mean()
    batch = draw_batch(samples, 4, weights, rng)
    assert len({s.image_id for s in batch}) == 4, "no repeats within a batch when avoidable"
