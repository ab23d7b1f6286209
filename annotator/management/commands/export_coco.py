import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotator.audit.models import AuditAction
from annotator.audit.services import record_event
from annotator.datasets.models import Dataset
from annotator.datasets.services.coco_export import (
    ExportError,
    dataset_media_prefix,
    parse_splits,
    write_coco,
)


class Command(BaseCommand):
    help = "Export a dataset as COCO: every image of the chosen splits, negatives included."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("--split", default="all", help="comma-separated splits, or 'all'")
        parser.add_argument("--out", type=Path, required=True, help="output JSON file")

    def handle(self, *args, **options):
        try:
            dataset = Dataset.objects.get(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset named {options['dataset']!r}") from None
        try:
            splits = parse_splits(options["split"])
        except ExportError as exc:
            raise CommandError(str(exc)) from exc
        started = time.perf_counter()
        try:
            coco = write_coco(dataset, splits, options["out"])
        except OSError as exc:
            raise CommandError(f"{options['out']}: cannot be written: {exc}") from exc
        elapsed = time.perf_counter() - started
        record_event(None, None, AuditAction.DATASET_EXPORTED, dataset=dataset, obj=dataset,
                     details={"splits": splits, "images": len(coco["images"]), "via": "command",
                              "out": str(options["out"])})
        images_dir = Path(settings.MEDIA_ROOT) / dataset_media_prefix(dataset)
        self.stdout.write(
            self.style.SUCCESS(
                f"wrote {options['out']}: {len(coco['images'])} images, "
                f"{len(coco['annotations'])} boxes, {len(coco['categories'])} categories "
                f"in {elapsed:.2f} s; file names are relative to {images_dir}"
            )
        )
