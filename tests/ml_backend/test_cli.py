"""``python -m ml_backend`` commands, run in-process through ``cli.main``."""

from __future__ import annotations

import json

import pytest

from ml_backend.checkpoints import sha256_file
from ml_backend.cli import main


def run(argv, capsys) -> dict:
    assert main([str(a) for a in argv]) == 0
    return json.loads(capsys.readouterr().out)


def fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.fixture
def coco_args(tiny_snapshot):
    return ["--coco", tiny_snapshot.annotations]


def test_train_writes_a_checkpoint_and_reports_it(coco_args, engine_configs, tmp_path, capsys):
    tiny = engine_configs["torchvision"]
    out = tmp_path / "w.pt"
    summary = run(
        ["train", *coco_args, "--val-coco", coco_args[1], "--arch", "mobilenet_v3",
         "--iterations", 2, "--eval-every", 2, "--min-size", 128, "--max-size", 128,
         "--batch-size", 2, "--threads", 2, "--out", out,
         "--set", f"rpn_proposals_test={tiny['rpn_proposals_test']}",
         "--set", f"roi_batch_size_per_image={tiny['roi_batch_size_per_image']}"],
        capsys,
    )
    assert summary["sha256"] == sha256_file(out)
    assert summary["iterations"] == 2 and summary["config"]["architecture"] == "mobilenet_v3_large_fpn"
    assert 0.0 <= summary["best_val_map50"] <= 1.0
    assert summary["version"] == f"torchvision/mobilenet_v3_large_fpn/{summary['sha256'][:12]}"


def test_predict_evaluate_and_rank(coco_args, trained_checkpoints, tmp_path, capsys):
    weights = ["--weights", trained_checkpoints("torchvision").path]
    out = tmp_path / "predictions.json"
    assert main([str(a) for a in ["predict", *coco_args, *weights, "--out", out]]) == 0
    predictions = json.loads(out.read_text())
    assert predictions["category_ids"] == [1, 2] and predictions["results"]
    first = predictions["results"][0]
    assert len(first["bbox"]) == 4 and len(first["class_probs"]) == 3
    assert sum(first["class_probs"]) == pytest.approx(1.0, abs=1e-3)

    metrics = run(["evaluate", *coco_args, *weights], capsys)
    assert 0.0 <= metrics["map50"] <= 1.0 and metrics["n_images"] == 16
    in_bfloat16 = run(["evaluate", *coco_args, *weights, "--set", "inference_precision=bfloat16"], capsys)
    assert in_bfloat16["n_images"] == 16 and 0.0 <= in_bfloat16["map50"] <= 1.0

    ranking = run(["rank", *coco_args, *weights, "--strategy", "ranked_batch", "--n", 4,
                   "--labelled-coco", coco_args[1]], capsys)
    assert ranking["strategy"] == "ranked_batch" and len(ranking["selected"]) == 4
    assert sorted(ranking["image_ids"]) == list(range(1, 17))
    localization = run(["rank", *coco_args, *weights, "--strategy", "localization"], capsys)
    assert len(localization["scores"]) == 16


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bad_input_names_the_file_and_the_reason(
    coco_args, trained_checkpoints, pickle_payload, tmp_path, capsys
):
    weights = ["--weights", trained_checkpoints("torchvision").path]
    missing = tmp_path / "nope.json"
    assert f"{missing}: no such file" in fails(["evaluate", "--coco", missing, *weights], capsys)

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert f"{broken}: not a valid COCO annotation file" in fails(
        ["predict", "--coco", broken, *weights], capsys
    )

    evil = tmp_path / "evil.pt"
    marker = pickle_payload(evil)
    message = fails(["predict", *coco_args, "--weights", evil], capsys)
    assert f"{evil}: refused" in message and not marker.exists()

    message = fails(["train", *coco_args, "--iterations", 1, "--out", tmp_path / "w.pt",
                     "--set", "min_sise=3"], capsys)
    assert "unknown TorchvisionConfig keys: min_sise" in message
    message = fails(["evaluate", *coco_args, *weights, "--set", "inference_precision=float8"], capsys)
    assert "inference_precision must be one of float32, bfloat16; got 'float8'" in message

    message = fails(["rank", *coco_args, *weights, "--strategy", "psychic"], capsys)
    assert "unknown strategy 'psychic'" in message



def test_train_help_lists_every_architecture_and_its_starts(capsys):
    from ml_backend.cli import ARCH_ALIASES, TORCHVISION_INITS
    from ml_backend.engines.torchvision_engine import ARCHITECTURES

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert set(TORCHVISION_INITS) == set(ARCHITECTURES) <= set(ARCH_ALIASES)
    for name, architecture in ARCHITECTURES.items():
        listed = [part.split(" (")[0] for part in TORCHVISION_INITS[name].split(", ")]
        assert listed == architecture.inits(), name
        assert f"  {name}: {TORCHVISION_INITS[name]}" in text
