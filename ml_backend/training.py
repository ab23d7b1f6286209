"""The incremental fine-tuning loop shared by the engines.

An engine supplies the model, a function computing the loss dict of a batch of samples
and, optionally, a function returning validation mAP50; this module owns the rest:
seeding, replay sampling, optimiser and schedule, limits, early stopping, progress.

Replay: a snapshot holds every accepted annotation so far, so each batch is drawn from
all of its images (earlier ones and new ones alike); images flagged ``"new": true`` can be
drawn ``new_image_weight`` times as often.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ml_backend.coco_dataset import Sample, load_coco, load_pixels, load_samples
from ml_backend.contract import Detections, EngineConfig, Progress, ProgressCallback
from ml_backend.devices import MixedPrecision, device_of, device_report

LossFn = Callable[[list[Sample]], dict[str, torch.Tensor]]
MAX_GRAD_NORM = 10.0


@dataclass
class TrainingOutcome:
    iterations: int
    loss_history: list[dict[str, float]] = field(default_factory=list)
    best_val_map50: float | None = None
    stop_reason: str = "iterations"
    device: str | None = None  # where the model trained, e.g. "cuda:0"
    device_name: str | None = None
    precision: str | None = None  # "float32", or the autocast dtype on a GPU


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def sampling_weights(samples: Sequence[Sample], new_image_weight: float) -> np.ndarray:
    weights = np.array([new_image_weight if s.is_new else 1.0 for s in samples], dtype=np.float64)
    return weights / weights.sum()


def draw_batch(
    samples: Sequence[Sample], batch_size: int, weights: np.ndarray, rng: np.random.Generator
) -> list[Sample]:
    """``batch_size`` samples drawn by weight, without repeats when there are enough."""
    replace = len(samples) < batch_size
    return [samples[i] for i in rng.choice(len(samples), size=batch_size, replace=replace, p=weights)]


def make_optimizer(params: list[torch.nn.Parameter], config: EngineConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {config.optimizer!r}")


def warmup_cosine(warmup_iters: int, total: int) -> Callable[[int], float]:
    """LR factor: linear warm-up from 0.1 over ``warmup_iters``, then cosine to 0.05."""

    def factor(step: int) -> float:
        if step < warmup_iters:
            return 0.1 + 0.9 * step / warmup_iters
        progress = (step - warmup_iters) / max(total - warmup_iters, 1)
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def fine_tune(
    model: torch.nn.Module,
    samples: Sequence[Sample],
    compute_losses: LossFn,
    config: EngineConfig,
    iterations: int,
    validate: Callable[[], float] | None = None,
    on_progress: ProgressCallback | None = None,
    precision: MixedPrecision | None = None,
) -> TrainingOutcome:
    """Train ``model`` in place for up to ``iterations`` steps.

    Stops early at ``config.time_limit_s`` or when validation mAP50 (checked every
    ``config.eval_every`` iterations when ``validate`` is given) has not improved for
    ``config.early_stop_patience`` checks; the last iteration (time limit included) is
    always checked. When validation ran, the model ends with the weights of its best
    check. ``TrainingCancelled`` from ``on_progress`` propagates.

    The model trains where it is (``compute_losses`` puts the batch there). With a mixed
    ``precision`` (``ml_backend.devices.training_precision``), ``compute_losses`` runs
    the forward pass under its ``autocast()`` (and only that: autocast around data
    preparation would put CPU-side boxes in bfloat16) and its gradient scaler steps the
    optimiser; None is float32.
    """
    if not samples:
        raise ValueError("the training snapshot has no images")
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    weights = sampling_weights(samples, config.new_image_weight)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, config)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(config.warmup_iters, iterations)
    )
    device = device_of(model)
    precision = precision or MixedPrecision(device.type, None)
    scaler = precision.grad_scaler()
    outcome = TrainingOutcome(iterations=0, precision=precision.name, **device_report(device))
    best_state: dict[str, torch.Tensor] | None = None
    checks_without_gain = 0
    started = time.monotonic()
    model.train()
    for iteration in range(1, iterations + 1):
        losses = compute_losses(draw_batch(samples, config.batch_size, weights, rng))
        total = sum(losses.values())
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"loss is {total.item()} at iteration {iteration}; lower lr (now {config.lr})"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.unscale_(optimizer)  # clip the true gradients
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        scaler.step(optimizer)  # skipped when a float16 gradient overflowed
        scaler.update()
        schedule.step()
        record = {name: float(value.detach()) for name, value in losses.items()}
        record["loss"] = float(total.detach())
        outcome.loss_history.append(record)
        outcome.iterations = iteration

        out_of_time = (
            config.time_limit_s is not None and time.monotonic() - started >= config.time_limit_s
        )
        val_map50 = None
        if validate is not None and config.eval_every > 0 and (
            iteration % config.eval_every == 0 or iteration == iterations or out_of_time
        ):
            val_map50 = validate()
            model.train()
            if outcome.best_val_map50 is None or val_map50 > outcome.best_val_map50:
                outcome.best_val_map50 = val_map50
                best_state = copy.deepcopy(model.state_dict())
                checks_without_gain = 0
            else:
                checks_without_gain += 1
        if on_progress is not None:
            on_progress(Progress(iteration, iterations, record, val_map50))
        if 0 < config.early_stop_patience <= checks_without_gain:
            outcome.stop_reason = "early_stop"
            break
        if out_of_time:
            outcome.stop_reason = "time_limit"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return outcome


def validation_map50(
    predict: Callable[[Sequence[np.ndarray]], list[Detections]],
    annotations: Path,
    images_dir: Path,
    batch_size: int = 4,
) -> float:
    """COCO mAP50 of ``predict`` on a validation split (``ml_backend.evaluation``)."""
    from ml_backend.evaluation import evaluate_detections

    samples = load_samples(load_coco(annotations), images_dir)
    predictions: dict[int, Detections] = {}
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        found = predict([load_pixels(s) for s in chunk])
        predictions.update({s.image_id: d for s, d in zip(chunk, found, strict=True)})
    map50 = evaluate_detections(Path(annotations), predictions)["map50"]
    return 0.0 if map50 is None else float(map50)  # None: the split has no fracture at all
