from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotator.datasets.models import Dataset
from annotator.learning.services.schedules import (
    InvalidSchedule,
    retrain_after_new_labels,
    schedule_training,
)


class Command(BaseCommand):
    help = "Schedule retraining of a dataset (cron or interval), and/or its 'every N new labels' rule."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--cron", help='five-field crontab in UTC, e.g. "0 2 * * *"')
        parser.add_argument("--every-minutes", type=int)
        parser.add_argument("--after-new-labels", type=int, help="retrain once N new images are labeled")

    def handle(self, *args, **options):
        try:
            dataset = Dataset.objects.get(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset named {options['dataset']!r}") from None
        if options["after_new_labels"] is not None:
            try:
                policy = retrain_after_new_labels(dataset, options["after_new_labels"])
            except InvalidSchedule as exc:
                raise CommandError(f"--after-new-labels: {exc}") from exc
            self.stdout.write(f"retrain after {policy.retrain_after_new_labels} new labels")
        if options["cron"] or options["every_minutes"]:
            try:
                task = schedule_training(dataset, cron=options["cron"], every_minutes=options["every_minutes"])
            except (InvalidSchedule, ValidationError) as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(self.style.SUCCESS(f"{task.name}: {task.crontab or task.interval}"))
