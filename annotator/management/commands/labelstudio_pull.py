from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotator.datasets.models import Dataset
from annotator.labelstudio.sdk_sync import pull_annotations


class Command(BaseCommand):
    help = ("Bring the annotations of a dataset's Label Studio project back as revisions "
            "(each task's latest submitted annotation). Idempotent.")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("--url", required=True, help="Label Studio base URL")
        parser.add_argument("--api-key", required=True, help="Label Studio API token")
        parser.add_argument("--actor", default="", help="our username the revisions are written as")

    def handle(self, *args, **options):
        dataset = Dataset.objects.filter(name=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"no dataset named {options['dataset']!r}")
        actor = get_user_model().objects.filter(username=options["actor"]).first() if options["actor"] else None
        try:
            report = pull_annotations(dataset, url=options["url"], api_key=options["api_key"], actor=actor)
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(
            f"project {report.project_id}: {report.annotations_pulled} annotations pulled"))
