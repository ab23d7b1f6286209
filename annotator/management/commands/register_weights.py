from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotator.datasets.models import Dataset
from annotator.learning.services.registration import WeightsRefused, register_weights


class Command(BaseCommand):
    help = (
        "Register weights from a local file (an ml_backend checkpoint, a torchvision state_dict "
        "or a detectron2 checkpoint) as a candidate version. The file is loaded with "
        "torch.load(weights_only=True): anything else is refused, never unpickled."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--engine", default="torchvision")
        parser.add_argument("--architecture", help="for a bare state_dict, e.g. resnet50_fpn_v2")
        parser.add_argument("--no-evaluate", action="store_true", help="skip evaluation on the validation split")

    def handle(self, *args, **options):
        try:
            dataset = Dataset.objects.get(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset named {options['dataset']!r}") from None
        try:
            version = register_weights(
                dataset, options["file"], engine=options["engine"], architecture=options["architecture"],
                evaluate=not options["no_evaluate"],
            )
        except WeightsRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"registered {version.name} ({version.weights_sha256[:12]}) as a candidate"))
