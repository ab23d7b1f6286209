import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml_backend.contract import Detections
from ml_backend.selection import STRATEGIES, rank


def image(p_fracture, embedding, box=(0, 0, 10, 10)):
    """One candidate box: fracture (category 1) with probability p_fracture."""
    return Detections(
        boxes=np.array([box], dtype=np.float32),
        scores=np.array([max(p_fracture, 1 - p_fracture)], dtype=np.float32),
        labels=np.array([1], dtype=np.int64),
        class_probs=np.array([[1 - p_fracture, p_fracture]], dtype=np.float32),
        embedding=np.asarray(embedding, dtype=np.float32),
    )


@pytest.fixture
def pool():
    probabilities = [0.99, 0.5, 0.8, 0.6, 0.95]
    return [f"img{i}" for i in range(5)], [image(p, [i, 0]) for i, p in enumerate(probabilities)]


@pytest.mark.parametrize("strategy", ["least_confidence", "margin", "entropy"])
def test_top_k_returns_most_uncertain_first(pool, strategy):
    ids, detections = pool
    ranking = rank(strategy, ids, detections, n_instances=2, threshold=0.0)
    assert ranking.selected == ["img1", "img3"]
    assert ranking.image_ids == ["img1", "img3", "img2", "img4", "img0"]
    assert ranking.scores == sorted(ranking.scores, reverse=True)
    assert ranking.strategy == strategy


def test_every_strategy_orders_the_whole_pool(pool):
    ids, detections = pool
    for strategy in STRATEGIES:
        tta = detections if strategy == "localization" else None
        ranking = rank(strategy, ids, detections, n_instances=3, tta_detections=tta)
        assert sorted(ranking.image_ids) == sorted(ids)
        assert ranking.image_ids[: len(ranking.selected)] == ranking.selected
        assert len(ranking.selected) == 3


def test_random_is_deterministic_per_seed(pool):
    ids, detections = pool
    first = rank("random", ids, detections, seed=3)
    assert first.image_ids == rank("random", ids, detections, seed=3).image_ids
    orders = {tuple(rank("random", ids, detections, seed=s).image_ids) for s in range(10)}
    assert len(orders) > 1


def test_localization_ranks_unstable_boxes_first():
    detections = [image(0.9, [0, 0]), image(0.9, [1, 0])]
    flipped = [image(0.9, [0, 0]), image(0.9, [1, 0], box=(5, 0, 15, 10))]
    ranking = rank("localization", ["stable", "moved"], detections, tta_detections=flipped)
    assert ranking.image_ids == ["moved", "stable"]
    assert ranking.scores == pytest.approx([2 / 3, 0.0])


@pytest.mark.parametrize("labelled", [None, np.array([[-3.0, -3.0]]), np.array([[0.0, 0.0]])])
def test_ranked_batch_puts_a_distinct_image_before_near_duplicates(labelled):
    embeddings = [[0, 0], [0, 0], [0, 0], [5, 5]]
    detections = [image(0.6, e) for e in embeddings]
    ids = ["dup_a", "dup_b", "dup_c", "distinct"]
    ranking = rank("ranked_batch", ids, detections, n_instances=2, labelled_embeddings=labelled)
    assert "distinct" in ranking.selected
    assert len([i for i in ranking.selected if i.startswith("dup")]) == 1
    # plain top-k on the same (equal) uncertainties would take two duplicates
    assert rank("entropy", ids, detections, n_instances=2).selected == ["dup_a", "dup_b"]


def test_ranked_batch_still_prefers_uncertain_images_when_equally_distinct():
    detections = [image(0.95, [0, 5]), image(0.5, [5, 0])]
    ranking = rank(
        "ranked_batch",
        ["sure", "unsure"],
        detections,
        n_instances=1,
        labelled_embeddings=np.array([[0.0, 0.0]]),
    )
    assert ranking.selected == ["unsure"]


def test_cold_start_picks_spread_out_embeddings():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]])
    embeddings = np.concatenate([c + rng.normal(0, 0.3, (6, 2)) for c in centres])
    detections = [image(0.9, e) for e in embeddings]
    ids = list(range(len(embeddings)))
    ranking = rank("cold_start", ids, detections, n_instances=4)
    clusters = {i // 6 for i in ranking.selected}
    assert clusters == {0, 1, 2, 3}
    assert ranking.scores == [0.0] * len(ids)


def test_cold_start_avoids_the_labelled_region():
    embeddings = [[0, 0], [0.1, 0], [8, 8]]
    detections = [image(0.9, e) for e in embeddings]
    ranking = rank(
        "cold_start",
        ["a", "b", "c"],
        detections,
        n_instances=1,
        labelled_embeddings=np.array([[0.0, 0.1]]),
    )
    assert ranking.selected == ["c"]


def test_rejects_unknown_strategy_and_foreign_measure(pool):
    ids, detections = pool
    with pytest.raises(ValueError):
        rank("bald", ids, detections)
    with pytest.raises(ValueError):
        rank("entropy", ids, detections, measure="margin")
    assert rank("ranked_batch", ids, detections, measure="margin").options["measure"] == "margin"


def test_empty_pool():
    ranking = rank("ranked_batch", [], [])
    assert ranking.image_ids == [] and ranking.selected == []


def test_importing_the_measures_does_not_import_torch():
    code = (
        "import sys\n"
        "import ml_backend.phantoms, ml_backend.uncertainty, ml_backend.selection\n"
        "import ml_backend.evaluation\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
