from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotator.datasets.models import Dataset
from annotator.labelstudio.sdk_sync import push_dataset


class Command(BaseCommand):
    help = ("Create or update a Label Studio project for a dataset: label config from its "
            "categories, a task per image (signed image URLs of this platform), and the "
            "production version's predictions. Idempotent.")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("--url", required=True, help="Label Studio base URL")
        parser.add_argument("--api-key", required=True, help="Label Studio API token")
        parser.add_argument("--public-url", required=True,
                            help="this platform's base URL as Label Studio's users reach it")
        parser.add_argument("--actor", default="", help="our username recorded in the audit log")

    def handle(self, *args, **options):
        dataset = Dataset.objects.filter(name=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"no dataset named {options['dataset']!r}")
        actor = get_user_model().objects.filter(username=options["actor"]).first() if options["actor"] else None
        report = push_dataset(dataset, url=options["url"], api_key=options["api_key"],
                              public_base_url=options["public_url"], actor=actor)
        self.stdout.write(self.style.SUCCESS(
            f"project {report.project_id} ({'created' if report.created_project else 'updated'}): "
            f"{report.tasks_created} tasks created, {report.tasks_linked} linked, "
            f"{report.predictions_pushed} predictions pushed"))
