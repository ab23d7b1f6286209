from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotator.models import Split
from annotator.services.coco_import import CocoImportError, import_coco


class Command(BaseCommand):
    help = (
        "Import a COCO detection file and its images into a dataset (created if new). "
        "Idempotent: images already present (same pixels) are skipped with their boxes. "
        "Listed images without boxes come in as negatives."
    )

    def add_arguments(self, parser):
        parser.add_argument("annotations", type=Path, help="COCO annotations JSON")
        parser.add_argument("images_dir", type=Path, help="folder the file_name values are relative to")
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("--split", default=Split.TRAIN, choices=Split.values)
        parser.add_argument(
            "--images-only",
            action="store_true",
            help="store the images as unlabeled and ignore the boxes (an unlabeled pool)",
        )
        parser.add_argument(
            "--unlisted-as-negatives",
            action="store_true",
            help="also import image files the COCO file does not list, as negatives (FracAtlas)",
        )

    def handle(self, *args, **options):
        try:
            report = import_coco(
                options["annotations"],
                options["images_dir"],
                options["dataset"],
                split=options["split"],
                images_only=options["images_only"],
                unlisted_as_negatives=options["unlisted_as_negatives"],
            )
        except CocoImportError as exc:
            raise CommandError(str(exc)) from exc
        except ValidationError as exc:
            raise CommandError(f"{options['annotations']}: {' '.join(exc.messages)}") from exc
        self.stdout.write(self.style.SUCCESS(report.summary()))
