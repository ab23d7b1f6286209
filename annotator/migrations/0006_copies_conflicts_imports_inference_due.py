# Image copies and label conflicts (one image per pixels, every name and read kept), import
# records, upload-name anonymisation, and when a version's inference was last requested.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotator', '0005_areas_serving_version_run_stop'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='dataset',
            name='anonymize_upload_names',
            field=models.BooleanField(default=True, help_text='store and export uploads under a content hash instead of the name they came with (file names often carry patient identifiers)'),
        ),
        migrations.AddField(
            model_name='image',
            name='conflict',
            field=models.TextField(blank=True, help_text='why the copies of this image disagree, until a reader settles it'),
        ),
        migrations.AddField(
            model_name='modelversion',
            name='inference_requested_at',
            field=models.DateTimeField(blank=True, help_text='when proposals and ranking of the pool were last requested for it (the sweeper re-requests what is still missing after a while)', null=True),
        ),
        migrations.AlterField(
            model_name='image',
            name='status',
            field=models.CharField(choices=[('unlabeled', 'Unlabeled'), ('proposed', 'Proposed'), ('in_review', 'In review'), ('labeled', 'Labeled with boxes'), ('negative', 'Labeled negative'), ('skipped', 'Skipped'), ('conflict', 'Labels disagree (to settle)')], default='unlabeled', max_length=12),
        ),
        migrations.CreateModel(
            name='ImportRecord',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('source', models.CharField(help_text='what was imported (the annotation file)', max_length=1000)),
                ('options', models.JSONField(blank=True, default=dict)),
                ('report', models.JSONField(blank=True, default=dict)),
                ('started_at', models.DateTimeField()),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('dataset', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='imports', to='annotator.dataset')),
            ],
            options={
                'ordering': ['-started_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='ImageCopy',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('file_name', models.CharField(max_length=500)),
                ('split', models.CharField(blank=True, choices=[('train', 'Train'), ('val', 'Validation'), ('test', 'Test'), ('pool', 'Unlabeled pool')], help_text='the split its list named', max_length=10)),
                ('verdict', models.CharField(choices=[('fractured', 'Fractured (with boxes)'), ('negative', 'No fracture'), ('unlabeled', 'Not labeled')], max_length=10)),
                ('boxes', models.JSONField(blank=True, default=list, help_text='[{bbox: [x, y, w, h], category: coco_id}]')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('image', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='copies', to='annotator.image')),
            ],
            options={
                'ordering': ['image', 'id'],
                'constraints': [models.UniqueConstraint(fields=('image', 'file_name'), name='image_copy_name_once')],
            },
        ),
    ]
