"""The permissions of the admin actions (confirm, resolve, skip). Meta options only: nothing
changes in the database's tables; Django creates the permissions after ``migrate``."""
# ruff: noqa: RUF012  (as makemigrations writes it)

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('afterparty', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='task',
            options={
                'ordering': ('version',),
                'permissions': (
                    ('confirm_task', 'Can confirm a human step'),
                    ('resolve_task', 'Can resolve a failed or interrupted task'),
                    ('skip_task', 'Can skip a task that has not run'),
                ),
                'verbose_name': 'release task',
            },
        ),
    ]
