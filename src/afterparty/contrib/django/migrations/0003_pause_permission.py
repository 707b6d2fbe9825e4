"""The permission of the pause, resume and cancel admin actions. Meta options only: nothing
changes in the database's tables; Django creates the permission after ``migrate``."""
# ruff: noqa: RUF012  (as makemigrations writes it)

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('afterparty', '0002_task_permissions'),
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
                    ('pause_task', 'Can pause, resume and cancel a long task'),
                ),
                'verbose_name': 'release task',
            },
        ),
    ]
