from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Download torchvision's published weights (e.g. fasterrcnn_resnet50_fpn_v2_coco) into the "
        "torch hub cache ($TORCH_HOME) and check their published hash; needs internet access. "
        "Training (init=coco / imagenet) only reads that cache. Same as "
        "`python -m ml_backend fetch-weights NAME`."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, **options):
        from ml_backend.weights import WeightsUnavailable, fetch_weights

        try:
            path = fetch_weights(options["name"], progress=options["verbosity"] > 0)
        except WeightsUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"{options['name']}: {path}"))
