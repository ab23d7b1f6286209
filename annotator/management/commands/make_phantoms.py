from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ml_backend.phantoms import generate_dataset


class Command(BaseCommand):
    help = (
        "Write synthetic radiograph phantoms (long bones, soft tissue, noise, fractures with "
        "ground-truth boxes) as PNG images plus a COCO file. Deterministic per seed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--n", type=int, required=True, help="number of images")
        parser.add_argument("--size", type=int, default=512, help="image side in pixels")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--bit-depth", type=int, default=16, choices=[8, 16])
        parser.add_argument("--out", type=Path, required=True, help="output folder")

    def handle(self, *args, **options):
        if options["n"] < 1 or options["size"] < 64:
            raise CommandError("--n must be at least 1 and --size at least 64")
        path = generate_dataset(
            options["out"],
            options["n"],
            size=options["size"],
            seed=options["seed"],
            bit_depth=options["bit_depth"],
        )
        self.stdout.write(self.style.SUCCESS(f"wrote {options['n']} phantoms: {path}"))
