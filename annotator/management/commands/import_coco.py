import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotator.datasets.models import Split
from annotator.datasets.services.coco_import import CocoImportError, import_coco
from annotator.datasets.services.splits import SplitListError, split_lists_in


class Command(BaseCommand):
    help = (
        "Import a COCO detection file and its images into a dataset (created if new). "
        "Files that cannot be imported are skipped and reported (--strict refuses the whole "
        "import instead); pixel-identical files become one image with one copy per name. "
        "Idempotent: images already present (same pixels) are skipped with their boxes. "
        "Listed images without boxes come in as negatives. The report is printed, kept on "
        "the dataset page, and written as JSON with --report."
    )

    def add_arguments(self, parser):
        parser.add_argument("annotations", type=Path, help="COCO annotations JSON")
        parser.add_argument("images_dir", type=Path, help="folder the file_name values are relative to")
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument(
            "--split", default=Split.TRAIN, choices=Split.values,
            help="the split of images no split list names (default: train)",
        )
        parser.add_argument(
            "--splits", type=Path, metavar="DIR",
            help="folder of split lists train/valid/test (.csv or .txt, one file name per row; "
            "valid means val), e.g. FracAtlas' split/",
        )
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
        parser.add_argument(
            "--strict", action="store_true",
            help="refuse the whole import if any file would be skipped (all or nothing)",
        )
        parser.add_argument(
            "--store-damaged", action="store_true",
            help="store JPEGs that end early as far as they decode, marked damaged, instead of skipping them",
        )
        parser.add_argument("--report", type=Path, metavar="FILE", help="also write the report as JSON to FILE")

    def handle(self, *args, **options):
        if options["report"] and not options["report"].parent.is_dir():
            raise CommandError(f"{options['report']}: its folder does not exist")
        try:
            report = import_coco(
                options["annotations"],
                options["images_dir"],
                options["dataset"],
                split=options["split"],
                images_only=options["images_only"],
                unlisted_as_negatives=options["unlisted_as_negatives"],
                strict=options["strict"],
                store_damaged=options["store_damaged"],
                split_lists=split_lists_in(options["splits"]) if options["splits"] else None,
            )
        except (CocoImportError, SplitListError) as exc:
            raise CommandError(str(exc)) from exc
        except ValidationError as exc:
            raise CommandError(f"{options['annotations']}: {' '.join(exc.messages)}") from exc
        if options["report"]:
            try:
                options["report"].write_text(json.dumps(report.as_dict(), indent=1), encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"{options['report']}: the report cannot be written: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(report.summary()))
