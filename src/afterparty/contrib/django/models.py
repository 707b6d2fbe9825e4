"""The records tables as Django models, for the admin, ``dumpdata`` and test databases.

The app's migration creates the tables exactly as afterparty creates them itself (which it
does, under its lock, the first time it records anything outside Django): either can come
first. The table prefix is the one configured when the migration runs.
"""

from __future__ import annotations

from django.db import models

from afterparty.config import DEFAULTS
from afterparty.contrib.django.configuration import django_afterparty_settings
from afterparty.errors import AfterpartyError


def _table_prefix() -> str:
    # A broken setting must not stop Django from starting: manage.py afterparty reports it.
    try:
        return django_afterparty_settings().table_prefix
    except AfterpartyError:
        return DEFAULTS["table_prefix"]


PREFIX = _table_prefix()


class Task(models.Model):
    """One release task's record in this environment."""

    version = models.CharField(max_length=14, primary_key=True)
    name = models.CharField(max_length=255)
    state = models.CharField(max_length=255)
    description = models.TextField(null=True)
    attempts = models.IntegerField()
    checksum = models.CharField(max_length=255, null=True)
    first_started_at = models.CharField(max_length=255, null=True)
    last_started_at = models.CharField(max_length=255, null=True)
    finished_at = models.CharField(max_length=255, null=True)
    last_error = models.TextField(null=True)
    recurring = models.IntegerField(default=0)
    waiting_reason = models.TextField(null=True)

    class Meta:
        db_table = f"{PREFIX}tasks"
        ordering = ("version",)
        verbose_name = "release task"
        # The admin actions (admin_actions.py): who may take which decision.
        permissions = (("confirm_task", "Can confirm a human step"),
                       ("resolve_task", "Can resolve a failed or interrupted task"),
                       ("skip_task", "Can skip a task that has not run"),
                       ("pause_task", "Can pause, resume and cancel a long task"))

    def __str__(self) -> str:
        return f"{self.version} {self.name}"


class Attempt(models.Model):
    """One attempt at a task, or one decision about it (mark-done, skip, forget, resolve)."""

    id = models.BigAutoField(primary_key=True)
    task = models.ForeignKey(Task, on_delete=models.DO_NOTHING, db_column="version",
                             db_constraint=False, db_index=False, related_name="attempt_set")
    # (afterparty indexes the column itself, as <prefix>attempts_version.)
    name = models.CharField(max_length=255)
    action = models.CharField(max_length=255)
    state = models.CharField(max_length=255)
    started_at = models.CharField(max_length=255)
    finished_at = models.CharField(max_length=255, null=True)
    duration = models.FloatField(null=True)
    host = models.CharField(max_length=255, null=True)
    pid = models.IntegerField(null=True)
    username = models.CharField(max_length=255, null=True)
    release_id = models.CharField("release", max_length=255, null=True)
    environment = models.CharField(max_length=255, null=True)
    error = models.TextField(null=True)
    output = models.TextField(null=True)
    tool_version = models.CharField("afterparty version", max_length=255, null=True)
    note = models.TextField(null=True)

    class Meta:
        db_table = f"{PREFIX}attempts"
        ordering = ("id",)
        verbose_name = "attempt"

    def __str__(self) -> str:
        return f"{self.task_id} {self.action} #{self.id}"
