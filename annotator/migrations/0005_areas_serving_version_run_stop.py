"""The string ``model_version`` fields become ``serving_version`` (they hold the serving
version string, unlike the ``model_version`` foreign keys); quick reads keep the serving
version that read them; training runs record their stop reason and device; images keep
what decoding reported (EXIF orientation applied, damage, warnings)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotator", "0004_audit_and_interop")]

    operations = [
        migrations.AddField(
            model_name="image",
            name="exif_orientation",
            field=models.PositiveSmallIntegerField(
                blank=True, help_text="the EXIF orientation applied on the way in (pixels are stored upright)", null=True
            ),
        ),
        migrations.AddField(
            model_name="image",
            name="damage",
            field=models.TextField(
                blank=True, help_text="why the file is damaged, when it was stored as far as it decoded"
            ),
        ),
        migrations.AddField(
            model_name="image",
            name="decode_warnings",
            field=models.JSONField(
                blank=True, default=list, help_text="problems that did not stop decoding (e.g. unusable pixel spacing)"
            ),
        ),
        migrations.RenameField("annotation", "model_version", "serving_version"),
        migrations.RenameField("readingsession", "model_version", "serving_version"),
        migrations.RenameField("boxoutcome", "model_version", "serving_version"),
        migrations.AddField(
            model_name="quickread",
            name="serving_version",
            field=models.CharField(blank=True, help_text="the serving version that read it", max_length=100),
        ),
        migrations.AddField(
            model_name="trainingrun",
            name="stop_reason",
            field=models.CharField(
                blank=True, help_text="why training stopped: iterations, time_limit or early_stop", max_length=20
            ),
        ),
        migrations.AddField(
            model_name="trainingrun",
            name="device",
            field=models.CharField(
                blank=True, help_text="where it trained, e.g. cpu or cuda:0 (GPU name)", max_length=200
            ),
        ),
    ]
