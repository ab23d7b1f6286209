"""TrainingPolicy holds training, gate, ranking and proposal settings: it is renamed
LearningPolicy for what it holds, and gains the gate's floor (a first model is no longer
promoted whatever it is worth) and the queue its training runs go to."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotator", "0006_copies_conflicts_imports_inference_due")]

    operations = [
        migrations.RenameModel("TrainingPolicy", "LearningPolicy"),
        migrations.AlterModelOptions(name="learningpolicy", options={"verbose_name_plural": "learning policies"}),
        migrations.AlterField(
            model_name="learningpolicy",
            name="dataset",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE, related_name="learning_policy", to="annotator.dataset"
            ),
        ),
        migrations.AddField(
            model_name="learningpolicy",
            name="training_queue",
            field=models.CharField(
                default="training",
                help_text="the Celery queue its runs go to: a GPU worker on another machine consumes e.g. "
                "'training-gpu'",
                max_length=100,
            ),
        ),
        migrations.AddField(
            model_name="learningpolicy",
            name="gate_floor",
            field=models.FloatField(
                default=0.1,
                help_text="a candidate is never promoted below this value of the gate metric, even when there is "
                "no production version to compare with",
            ),
        ),
    ]
