"""The records tables, created with afterparty's own DDL (``CREATE TABLE IF NOT EXISTS``), so
that ``migrate`` and the first ``afterparty run`` can come in either order. Their names carry
the table prefix configured when this migration runs."""
# ruff: noqa: RUF012  (as makemigrations writes it)

import django.db.models.deletion
from django.db import migrations, models

from afterparty.contrib.django.models import PREFIX
from afterparty.contrib.django.schema import create_records_tables, drop_records_tables


class Migration(migrations.Migration):

    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [migrations.SeparateDatabaseAndState(
        database_operations=[migrations.RunPython(create_records_tables, drop_records_tables)],
        state_operations=[
        migrations.CreateModel(
            name='Task',
            fields=[
                ('version', models.CharField(max_length=14, primary_key=True, serialize=False)),
                ('name', models.CharField(max_length=255)),
                ('state', models.CharField(max_length=255)),
                ('description', models.TextField(null=True)),
                ('attempts', models.IntegerField()),
                ('checksum', models.CharField(max_length=255, null=True)),
                ('first_started_at', models.CharField(max_length=255, null=True)),
                ('last_started_at', models.CharField(max_length=255, null=True)),
                ('finished_at', models.CharField(max_length=255, null=True)),
                ('last_error', models.TextField(null=True)),
                ('recurring', models.IntegerField(default=0)),
                ('waiting_reason', models.TextField(null=True)),
            ],
            options={
                'verbose_name': 'release task',
                'db_table': f'{PREFIX}tasks',
                'ordering': ('version',),
            },
        ),
        migrations.CreateModel(
            name='Attempt',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('name', models.CharField(max_length=255)),
                ('action', models.CharField(max_length=255)),
                ('state', models.CharField(max_length=255)),
                ('started_at', models.CharField(max_length=255)),
                ('finished_at', models.CharField(max_length=255, null=True)),
                ('duration', models.FloatField(null=True)),
                ('host', models.CharField(max_length=255, null=True)),
                ('pid', models.IntegerField(null=True)),
                ('username', models.CharField(max_length=255, null=True)),
                ('release_id', models.CharField(max_length=255, null=True, verbose_name='release')),
                ('environment', models.CharField(max_length=255, null=True)),
                ('error', models.TextField(null=True)),
                ('output', models.TextField(null=True)),
                ('tool_version', models.CharField(max_length=255, null=True,
                                                  verbose_name='afterparty version')),
                ('note', models.TextField(null=True)),
                ('task', models.ForeignKey(
                    db_column='version', db_constraint=False, db_index=False,
                    on_delete=django.db.models.deletion.DO_NOTHING, related_name='attempt_set',
                    to='afterparty.task')),
            ],
            options={
                'verbose_name': 'attempt',
                'db_table': f'{PREFIX}attempts',
                'ordering': ('id',),
            },
        ),
    ])]
