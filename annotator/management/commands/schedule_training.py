from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotator.models import Dataset
from annotator.services.schedules import InvalidSchedule, schedule_training
from annotator.services.versions import policy_for


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
            if options["after_new_labels"] < 1:
                raise CommandError("--after-new-labels must be at least 1")
            policy = policy_for(dataset)
            policy.retrain_after_new_labels = options["after_new_labels"]
            policy.save(update_fields=["retrain_after_new_labels"])
            self.stdout.write(f"retrain after {policy.retrain_after_new_labels} new labels")
        if options["cron"] or options["every_minutes"]:
            try:
                task = schedule_training(dataset, cron=options["cron"], every_minutes=options["every_minutes"])
            except (InvalidSchedule, ValidationError) as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(self.style.SUCCESS(f"{task.name}: {task.crontab or task.interval}"))
