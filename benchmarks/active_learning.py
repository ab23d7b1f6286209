#!/usr/bin/env python
"""Active-learning label efficiency, and incremental vs from-scratch retraining.

    .venv/bin/python benchmarks/active_learning.py            # the full protocol (long)
    .venv/bin/python benchmarks/active_learning.py --quick    # a smoke run (tiny settings)
    .venv/bin/python benchmarks/active_learning.py --report-only   # re-aggregate saved seeds

All data are synthetic phantoms (``ml_backend.phantoms``): a pool, a frozen validation
split and a held-out test split, each generated with its own seed. For each seed the
same random initial images are labeled and one round-0 model is trained from scratch;
then every strategy, round after round, ranks a random candidate subset of the unlabeled
pool with the current model, "labels" its picks (the ground truth is revealed) and
fine-tunes the previous round's weights on all its labeled images (replay) for the same
number of iterations. Test mAP50 and FROC sensitivity at 2 FP/image are measured after
every round; the test split is never used for any choice.

Part 2 (its own process, seed 0): the rounds of ``--scratch-strategy`` are repeated and
after each the same labeled set is also trained from random weights, in chunks, until its validation
mAP50 reaches the incremental model's (within 0.01) or ``--scratch-cap`` times the
iterations the incremental chain has spent so far. Both wall times exclude evaluation.

Seeds run in parallel processes (one torch thread each). Each seed's results are saved
after every round to benchmarks/results/active_learning[-quick].seed<N>.json (part 2:
``.scratch.json``), then merged into active_learning[-quick].json and plotted to docs/benchmarks/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from _django import RESULTS, ROOT

sys.path.insert(0, str(ROOT))

PLOTS = ROOT / "docs" / "benchmarks"
MATCH_TOLERANCE = 0.01  # from-scratch "reaches" the incremental validation mAP50 within this
FROC_RATE = 2.0  # false positives per image of the reported FROC sensitivity
# Below this incremental validation mAP50 "train from scratch to the same mAP50" is
# degenerate (an untrained model already matches it), so its ratio is left out.
MEANINGFUL_MAP50 = 0.05

FULL = {
    "image_size": 256, "input_size": 128, "pool": 600, "val": 50, "test": 80,
    "initial": 20, "per_round": 20, "rounds": 6, "candidates": 100,
    "iterations_initial": 100, "iterations": 25, "seeds": 3,
    "strategies": ["random", "least_confidence", "entropy", "localization", "ranked_batch"],
    "scratch_chunk": 25, "scratch_cap": 1.0,
}
QUICK = {
    "image_size": 128, "input_size": 128, "pool": 20, "val": 6, "test": 6,
    "initial": 4, "per_round": 4, "rounds": 2, "candidates": 8,
    "iterations_initial": 2, "iterations": 2, "seeds": 1,
    "strategies": ["random", "ranked_batch"],
    "scratch_chunk": 2, "scratch_cap": 1.0,
}
SPLIT_SEEDS = {"pool": 7001, "val": 7002, "test": 7003}


def engine_config(settings: dict, seed: int) -> dict:
    """MobileNetV3-Large-FPN Faster R-CNN, shrunk for a 2-core CPU, one thread."""
    size = settings["input_size"]
    return {
        "architecture": "mobilenet_v3_large_fpn", "min_size": size, "max_size": size,
        "batch_size": 4, "lr": 0.01, "warmup_iters": 10, "rpn_proposals_train": 300,
        "rpn_proposals_test": 100, "roi_batch_size_per_image": 64, "predict_batch_size": 8,
        "num_threads": 1, "seed": seed,
    }


# -- data ------------------------------------------------------------------------------


def make_splits(settings: dict, folder: Path) -> None:
    """Generate the pool, validation and test phantoms once (skipped when present)."""
    from ml_backend.phantoms import generate_dataset

    for split, seed in SPLIT_SEEDS.items():
        if not (folder / split / "annotations.json").exists():
            generate_dataset(folder / split, settings[split], size=settings["image_size"], seed=seed)


class Split:
    """One generated split: its COCO dict, paths, and decoded images by id."""

    def __init__(self, folder: Path) -> None:
        from ml_backend.coco_dataset import read_image

        self.annotations = folder / "annotations.json"
        self.images_dir = folder / "images"
        self.coco = json.loads(self.annotations.read_text())
        self.ids = [image["id"] for image in self.coco["images"]]
        self.pixels = {image["id"]: read_image(self.images_dir / image["file_name"])
                       for image in self.coco["images"]}

    def subset(self, image_ids: list[int], path: Path) -> Path:
        """Write the COCO file of ``image_ids`` only (the labeled snapshot)."""
        keep = set(image_ids)
        coco = {**self.coco,
                "images": [i for i in self.coco["images"] if i["id"] in keep],
                "annotations": [a for a in self.coco["annotations"] if a["image_id"] in keep]}
        path.write_text(json.dumps(coco))
        return path

    def images(self, image_ids: list[int]) -> list[np.ndarray]:
        return [self.pixels[i] for i in image_ids]


# -- one seed --------------------------------------------------------------------------


class SeedRun:
    """Every strategy's rounds for one seed, saved to ``out`` after each round."""

    def __init__(self, settings: dict, seed: int, data: Path, work: Path, out: Path) -> None:
        self.settings, self.seed, self.out = settings, seed, out
        self.work = work / f"seed{seed}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.pool, self.val, self.test = (Split(data / s) for s in ("pool", "val", "test"))
        self.result = {"seed": seed, "strategies": {}, "scratch": []}
        self.cache: dict[tuple, list] = {}

    def save(self) -> None:
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.result, indent=1) + "\n")
        tmp.replace(self.out)

    def train(self, name: str, labeled: list[int], init: Path | None, iterations: int, seed: int):
        """Train on ``labeled`` (from ``init`` or random weights); (checkpoint, seconds)."""
        from ml_backend.contract import Snapshot
        from ml_backend.registry import get_engine

        snapshot = Snapshot(self.pool.subset(labeled, self.work / f"{name}.json"), self.pool.images_dir)
        engine = get_engine("torchvision", **engine_config(self.settings, seed))
        started = time.perf_counter()
        checkpoint = engine.train(snapshot, init, iterations, out_path=self.work / f"{name}.pt")
        return checkpoint, time.perf_counter() - started

    def predict(self, checkpoint, split: Split, ids: list[int], flipped: bool = False) -> list:
        """Detections of ``ids`` by ``checkpoint`` (cached per weights digest)."""
        from ml_backend.engines import predict_hflip
        from ml_backend.registry import load_engine

        key = (checkpoint.sha256, id(split), tuple(ids), flipped)
        if key not in self.cache:
            engine = load_engine(checkpoint.path, num_threads=1)
            images = split.images(ids)
            self.cache[key] = predict_hflip(engine, images) if flipped else engine.predict(images)
        return self.cache[key]

    def evaluate(self, checkpoint, split: Split) -> dict:
        from ml_backend.evaluation import evaluate_detections

        found = self.predict(checkpoint, split, split.ids)
        metrics = evaluate_detections(split.annotations, dict(zip(split.ids, found, strict=True)))
        froc = metrics["froc"]
        return {"map50": metrics["map50"] or 0.0,
                "froc_2fp": froc["sensitivity"][froc["fp_per_image"].index(FROC_RATE)] or 0.0}

    def pick(self, strategy: str, checkpoint, labeled: list[int], round_no: int) -> list[int]:
        """The strategy's ``per_round`` picks from a seeded random candidate subset."""
        from ml_backend.selection import rank

        unlabeled = sorted(set(self.pool.ids) - set(labeled))
        rng = np.random.default_rng([self.seed, round_no])
        n = self.settings["per_round"]
        if strategy == "random":
            return rng.choice(unlabeled, n, replace=False).tolist()
        candidates = sorted(rng.choice(unlabeled, min(self.settings["candidates"], len(unlabeled)),
                                       replace=False).tolist())
        found = self.predict(checkpoint, self.pool, candidates)
        extra = {}
        if strategy == "localization":
            extra["tta_detections"] = self.predict(checkpoint, self.pool, candidates, flipped=True)
        if strategy == "ranked_batch":
            labeled_found = self.predict(checkpoint, self.pool, sorted(labeled))
            extra["labelled_embeddings"] = np.stack([d.embedding for d in labeled_found])
        ranking = rank(strategy, candidates, found, n_instances=n, seed=self.seed * 1000 + round_no, **extra)
        return [int(i) for i in ranking.selected]

    def run(self, scratch: bool) -> None:
        """All strategies round by round (so a cut-short run has every strategy up to
        its last round); with ``scratch``, only ``scratch_strategy`` plus part 2."""
        s = self.settings
        rng = np.random.default_rng(self.seed)
        initial = sorted(rng.choice(self.pool.ids, s["initial"], replace=False).tolist())
        first, first_s = self.train("r0", initial, None, s["iterations_initial"], self.seed)
        first_row = {"round": 0, "labels": len(initial), "train_s": round(first_s, 1),
                     **self.evaluate(first, self.test)}
        strategies = [s["scratch_strategy"]] if scratch else s["strategies"]
        state = {name: (list(initial), first) for name in strategies}
        self.result["strategies"] = {name: [first_row] for name in strategies}
        for round_no in range(1, s["rounds"] + 1):
            for name in strategies:
                labeled, checkpoint = state[name]
                labeled = labeled + self.pick(name, checkpoint, labeled, round_no)
                checkpoint, train_s = self.train(f"{name}-r{round_no}", labeled, checkpoint.path,
                                                 s["iterations"], self.seed * 1000 + round_no)
                if state[name][1] is not first:  # keep disk use flat: 76 MB per checkpoint
                    state[name][1].path.unlink()
                state[name] = (labeled, checkpoint)
                row = {"round": round_no, "labels": len(labeled), "train_s": round(train_s, 1),
                       **self.evaluate(checkpoint, self.test)}
                self.result["strategies"][name].append(row)
                if scratch:
                    spent = s["iterations_initial"] + round_no * s["iterations"]
                    self.result["scratch"].append(
                        self.from_scratch(round_no, labeled, checkpoint, train_s, spent))
                self.save()
                print(f"seed {self.seed} {name} round {round_no}: {row}", flush=True)

    def from_scratch(self, round_no: int, labeled: list[int], incremental, incremental_s: float,
                     spent: int) -> dict:
        """Train ``labeled`` from random weights until validation mAP50 matches."""
        from ml_backend.contract import Snapshot, TrainingCancelled
        from ml_backend.registry import get_engine

        s = self.settings
        target = self.evaluate(incremental, self.val)["map50"]
        cap = max(s["scratch_chunk"], int(s["scratch_cap"] * spent))
        snapshot = Snapshot(self.pool.subset(labeled, self.work / f"scratch-r{round_no}.json"),
                            self.pool.images_dir)
        engine = get_engine("torchvision", **engine_config(self.settings, self.seed * 1000 + round_no))
        state = {"eval_s": 0.0, "val_map50": 0.0, "iterations": 0}

        def check(progress) -> None:
            if progress.iteration % s["scratch_chunk"] and progress.iteration != progress.total:
                return
            evaluated = time.perf_counter()
            found = engine.predict(self.val.images(self.val.ids))
            from ml_backend.evaluation import evaluate_detections

            value = evaluate_detections(self.val.annotations, dict(zip(self.val.ids, found, strict=True)))["map50"]
            engine.model.train()
            state.update(val_map50=value or 0.0, iterations=progress.iteration)
            state["eval_s"] += time.perf_counter() - evaluated
            if state["val_map50"] >= target - MATCH_TOLERANCE:
                raise TrainingCancelled

        started = time.perf_counter()
        try:
            engine.train(snapshot, None, cap, on_progress=check, out_path=self.work / "scratch.pt")
        except TrainingCancelled:
            pass
        scratch_s = time.perf_counter() - started - state["eval_s"]
        return {"round": round_no, "labels": len(labeled), "incremental_val_map50": target,
                "incremental_iterations": s["iterations"], "incremental_s": round(incremental_s, 1),
                "scratch_val_map50": state["val_map50"], "scratch_iterations": state["iterations"],
                "scratch_s": round(scratch_s, 1), "cap_iterations": cap,
                "cap_hit": state["val_map50"] < target - MATCH_TOLERANCE,
                "time_ratio": round(incremental_s / scratch_s, 3) if scratch_s > 0 else None,
                "iteration_ratio": round(s["iterations"] / max(state["iterations"], 1), 3)}


def run_seed(settings: dict, seed: int, data: Path, work: Path, out: Path, scratch: bool) -> None:
    """One worker process: a seed's strategies, or (``scratch``) part 2 for that seed."""
    SeedRun(settings, seed, data, work / ("scratch" if scratch else "al"), out).run(scratch)


# -- aggregation -------------------------------------------------------------------------


def aulc(labels: list[int], values: list[float]) -> float:
    """Area under a learning curve, normalised by the label range (a mean value)."""
    return float(np.trapezoid(values, labels) / (labels[-1] - labels[0]))


def rounds_done(seeds: list[dict]) -> int:
    """Rounds after round 0 that every seed has finished for every strategy."""
    return min((len(rows) - 1 for s in seeds for rows in s["strategies"].values()), default=0)


def summarise(settings: dict, seeds: list[dict], scratch: list[dict]) -> dict:
    """Mean ± std per round, AULC, labels-to-random's-final, and part 2's ratios."""
    # A cut-short run: compare every strategy over the rounds all seeds have finished.
    rounds = rounds_done(seeds) + 1
    strategies = {}
    for name in settings["strategies"]:
        runs = [s["strategies"][name] for s in seeds if name in s["strategies"]]
        if not runs or rounds < 2:
            continue
        labels = [row["labels"] for row in runs[0][:rounds]]
        curves = {m: np.array([[row[m] for row in r[:rounds]] for r in runs]) for m in ("map50", "froc_2fp")}
        strategies[name] = {
            "seeds": len(runs), "labels": labels,
            **{f"{m}_{stat}": getattr(np, stat)(c, axis=0).round(4).tolist()
               for m, c in curves.items() for stat in ("mean", "std")},
            "aulc_map50_per_seed": [round(aulc(labels, c), 4) for c in curves["map50"]],
        }
    random = strategies.get("random")
    for entry in strategies.values():
        entry["aulc_map50_mean"] = round(float(np.mean(entry["aulc_map50_per_seed"])), 4)
        entry["aulc_map50_std"] = round(float(np.std(entry["aulc_map50_per_seed"])), 4)
        if random is None:
            continue
        goal = random["map50_mean"][-1]
        reached = [n for n, v in zip(entry["labels"], entry["map50_mean"], strict=True) if v >= goal]
        entry["labels_to_random_final"] = reached[0] if reached else None
        entry["label_fraction_of_random"] = round(reached[0] / random["labels"][-1], 3) if reached else None
        pairs = zip(entry["aulc_map50_per_seed"], random["aulc_map50_per_seed"], strict=False)
        entry["aulc_wins_over_random"] = sum(a > b for a, b in pairs)
    meaningful = [r for r in scratch if r["incremental_val_map50"] >= MEANINGFUL_MAP50 and r["time_ratio"]]
    return {"strategies": strategies, "incremental_vs_scratch": {
        "rounds": scratch, "meaningful_above_val_map50": MEANINGFUL_MAP50,
        "meaningful_rounds": len(meaningful),
        "median_time_ratio": float(np.median([r["time_ratio"] for r in meaningful])) if meaningful else None,
        "cap_hits": sum(r["cap_hit"] for r in scratch)}}


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, entry in summary["strategies"].items():
        for ax, metric in zip(axes, ("map50", "froc_2fp"), strict=True):
            mean, std = np.array(entry[f"{metric}_mean"]), np.array(entry[f"{metric}_std"])
            line, = ax.plot(entry["labels"], mean, marker="o", label=name)
            ax.fill_between(entry["labels"], mean - std, mean + std, color=line.get_color(), alpha=0.15)
    axes[0].set(xlabel="labeled images", ylabel="test mAP50", title="mAP50 (mean ± std over seeds)")
    axes[1].set(xlabel="labeled images", ylabel="sensitivity", title=f"FROC sensitivity at {FROC_RATE:g} FP/image")
    if summary["strategies"]:
        axes[0].legend(fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=110)


# -- command line ---------------------------------------------------------------------


def previous_wall_s(path: Path) -> float | None:
    """The measured wall time of the run a ``--report-only`` call re-aggregates."""
    return json.loads(path.read_text()).get("wall_s") if path.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke configuration")
    parser.add_argument("--report-only", action="store_true", help="merge saved seed files only")
    parser.add_argument("--jobs", type=int, default=None, help="parallel seed processes")
    parser.add_argument("--scratch-strategy", default="random")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON files")
    parser.add_argument("--plots", type=Path, default=PLOTS, help="folder of the PNG")
    for key, value in FULL.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None)
    args = parser.parse_args()
    settings = dict(QUICK if args.quick else FULL)
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    settings["scratch_strategy"] = args.scratch_strategy
    suffix = "-quick" if args.quick else ""
    var = ROOT / "var" / "benchmarks" / f"active-learning{suffix}"
    seed_files = [args.results / f"active_learning{suffix}.seed{n}.json" for n in range(settings["seeds"])]
    scratch_file = args.results / f"active_learning{suffix}.scratch.json"

    started = time.perf_counter()
    if not args.report_only:
        args.results.mkdir(parents=True, exist_ok=True)
        data = var / f"data-{settings['image_size']}px"
        make_splits(settings, data)
        jobs = [(n, path, False) for n, path in enumerate(seed_files)] + [(0, scratch_file, True)]
        with ProcessPoolExecutor(args.jobs or len(jobs), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_seed, settings, n, data, var, path, scratch)
                       for n, path, scratch in jobs]
            for future in futures:
                future.result()
    out = args.results / f"active_learning{suffix}.json"
    seeds = [json.loads(p.read_text()) for p in seed_files if p.exists()]
    scratch = json.loads(scratch_file.read_text())["scratch"] if scratch_file.exists() else []
    summary = summarise(settings, seeds, scratch)
    result = {
        "benchmark": "active_learning", "mode": "quick" if args.quick else "full",
        "data": "synthetic phantoms (ml_backend.phantoms); no patient data",
        "machine": f"{os.cpu_count()} cores, CPU only, shared with other work",
        "settings": settings, "engine": engine_config(settings, 0),
        "wall_s": previous_wall_s(out) if args.report_only else round(time.perf_counter() - started, 1),
        "seeds_completed": len(seeds), "rounds_compared": rounds_done(seeds), **summary,
    }
    plot_path = args.plots / f"active_learning{suffix}.png"
    plot(summary, plot_path, (f"synthetic phantoms ({settings['image_size']} px, model input "
                          f"{settings['input_size']} px), {len(seeds)} seed(s)"))
    result["plot"] = os.path.relpath(plot_path, ROOT)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("wall_s", "seeds_completed", "plot")}, indent=1))
    for name, entry in summary["strategies"].items():
        print(f"{name:18s} mAP50 {entry['map50_mean']}  AULC {entry['aulc_map50_mean']:.3f}"
              f"  labels->random final {entry.get('labels_to_random_final')}")
    print("incremental/scratch time ratios:",
          [r["time_ratio"] for r in summary["incremental_vs_scratch"]["rounds"]])


if __name__ == "__main__":
    main()
