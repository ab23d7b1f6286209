"""Selection strategies: which unlabeled images a reader should see first.

A strategy is a *measure* (a score per image, from ``ml_backend.uncertainty``) plus a
*selector* (which images to pick, in what order), kept separate as modAL does:

============== ======================================= ===================================
strategy       measure                                 selector
============== ======================================= ===================================
random         uniform draws from ``seed``              top-k (a seeded shuffle)
least_confidence / margin / entropy: that class measure top-k (modAL ``multi_argmax``)
localization   flip-TTA instability (needs tta)        top-k
ranked_batch   a class measure (``measure=``, entropy)  modAL ``ranked_batch``
cold_start     none (all zero: diversity only)         modAL ``ranked_batch``
============== ======================================= ===================================

modAL's ranked batch (Cardoso et al., 2017) picks one image at a time, maximising
``alpha * (1 - 1 / (1 + d)) + (1 - alpha) * u`` where ``d`` is the embedding distance to
the nearest labeled-or-already-picked image, ``u`` the uncertainty and
``alpha = |unlabeled| / (|unlabeled| + |labeled|)``. Uncertainties are divided by the
pool's largest value first so both terms live in ``[0, 1]``. Without labeled
embeddings modAL starts from the most central image. Its cost grows with
``n_instances * pool * (labeled + n_instances)`` distance evaluations, so batch
strategies pick ``DEFAULT_BATCH_SIZE`` images unless told otherwise.

Every ranking orders the whole pool: the selector's picks first, in pick order, then
the rest by descending score (ties by position in the pool).

modAL is imported inside the selectors: ``modAL.utils.data`` imports torch when it is
installed, and importing this module (for ``STRATEGIES``) must not.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml_backend.contract import Detections
from ml_backend.uncertainty import CLASS_MEASURES, pool_uncertainty

DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class Strategy:
    """``measure``: an uncertainty measure, ``"random"``, or None for no uncertainty."""

    measure: str | None
    selector: str  # "top_k" or "ranked_batch"


STRATEGIES: dict[str, Strategy] = {
    "random": Strategy("random", "top_k"),
    "least_confidence": Strategy("least_confidence", "top_k"),
    "margin": Strategy("margin", "top_k"),
    "entropy": Strategy("entropy", "top_k"),
    "localization": Strategy("localization", "top_k"),
    "ranked_batch": Strategy("entropy", "ranked_batch"),
    "cold_start": Strategy(None, "ranked_batch"),
}


@dataclass(frozen=True)
class Ranking:
    """A strategy's answer for a pool.

    ``image_ids`` is the whole pool in reading order and ``scores`` their measure
    values (same order); ``selected`` are the ids the selector picked, in pick order
    (a prefix of ``image_ids``); ``options`` records how the scores were made.
    """

    strategy: str
    image_ids: list[Hashable]
    scores: list[float]
    selected: list[Hashable]
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "image_ids": list(self.image_ids),
            "scores": list(self.scores),
            "selected": list(self.selected),
            "options": dict(self.options),
        }


class _LabeledSet:
    """The two attributes of a modAL learner that ``ranked_batch`` reads."""

    on_transformed = False

    def __init__(self, embeddings: np.ndarray | None) -> None:
        self.X_training = embeddings if embeddings is not None and len(embeddings) else None


def select_top_k(scores: np.ndarray, n_instances: int) -> np.ndarray:
    """Indices of the ``n_instances`` highest scores, highest first (ties by index)."""
    from modAL.utils.selection import multi_argmax

    picked, _ = multi_argmax(scores, n_instances)
    return picked[np.lexsort((picked, -scores[picked]))]


def select_ranked_batch(
    scores: np.ndarray,
    n_instances: int,
    embeddings: np.ndarray,
    labeled_embeddings: np.ndarray | None,
    metric: str = "euclidean",
) -> np.ndarray:
    """Indices picked by modAL's ranked batch (uncertainty x diversity), in pick order."""
    from modAL.batch import ranked_batch

    top = scores.max() if len(scores) else 0.0
    uncertainty = scores / top if top > 0 else np.zeros_like(scores)
    picked, _ = ranked_batch(
        _LabeledSet(labeled_embeddings),
        unlabeled=embeddings,
        uncertainty_scores=uncertainty,
        n_instances=n_instances,
        metric=metric,
        n_jobs=None,
    )
    # Without labeled embeddings modAL's cold-start image stays in its pool mask, so it
    # can be picked a second time; keep each image's first pick only.
    _, first = np.unique(picked, return_index=True)
    return picked[np.sort(first)].astype(int)


def _measure(
    measure: str | None,
    detections: Sequence[Detections],
    tta_detections: Sequence[Detections] | None,
    seed: int,
    options: dict[str, Any],
) -> np.ndarray:
    if measure == "random":
        return np.random.default_rng(seed).random(len(detections))
    if measure is None:
        return np.zeros(len(detections))
    return pool_uncertainty(detections, measure, tta_detections=tta_detections, **options)


def rank(
    strategy: str,
    image_ids: Sequence[Hashable],
    detections: Sequence[Detections],
    n_instances: int | None = None,
    labelled_embeddings: np.ndarray | None = None,
    tta_detections: Sequence[Detections] | None = None,
    seed: int = 0,
    metric: str = "euclidean",
    **measure_options: Any,
) -> Ranking:
    """Rank a pool of unlabeled images with a named strategy.

    ``detections[i]`` belongs to ``image_ids[i]``; ``tta_detections[i]`` (for
    ``localization``) are the boxes found in the flipped image, mapped back.
    ``n_instances`` is how many images the selector picks (None: the whole pool for
    top-k strategies, ``DEFAULT_BATCH_SIZE`` for batch ones). ``labelled_embeddings``
    (L, D) are the already-labeled images, the reference for diversity.
    ``measure_options`` go to ``uncertainty.image_uncertainty`` (``aggregate``,
    ``threshold``, ``min_iou``, ``penalty``); ``ranked_batch`` also takes ``measure``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {sorted(STRATEGIES)}")
    if len(image_ids) != len(detections):
        raise ValueError("image_ids and detections must have the same length")
    chosen = STRATEGIES[strategy]
    measure = chosen.measure
    if "measure" in measure_options:
        measure = measure_options.pop("measure")
        if strategy != "ranked_batch" or measure not in CLASS_MEASURES:
            raise ValueError(f"strategy {strategy!r} does not take measure={measure!r}")

    scores = _measure(measure, detections, tta_detections, seed, measure_options)
    pool = len(scores)
    if n_instances is None:
        n_instances = pool if chosen.selector == "top_k" else DEFAULT_BATCH_SIZE
    n_instances = max(0, min(n_instances, pool))

    if n_instances == 0:
        picked = np.zeros(0, dtype=int)
    elif chosen.selector == "top_k":
        picked = select_top_k(scores, n_instances)
    else:
        embeddings = np.stack([np.asarray(d.embedding, dtype=np.float64) for d in detections])
        picked = select_ranked_batch(scores, n_instances, embeddings, labelled_embeddings, metric)

    rest = np.setdiff1d(np.arange(pool), picked)
    order = np.concatenate([picked, rest[np.lexsort((rest, -scores[rest]))]]).astype(int)
    options = {"measure": measure, "n_instances": n_instances, "seed": seed, **measure_options}
    if chosen.selector == "ranked_batch":
        options["metric"] = metric
    return Ranking(
        strategy=strategy,
        image_ids=[image_ids[i] for i in order],
        scores=[float(scores[i]) for i in order],
        selected=[image_ids[i] for i in picked],
        options=options,
    )
