"""The records in the Django admin: tasks with their state, attempts with their output; read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from afterparty.contrib.django.models import Attempt, Task

ATTEMPT_FIELDS = ("id", "action", "state", "started_at", "finished_at", "duration", "username",
                  "host", "pid", "environment", "release_id", "tool_version", "note", "error",
                  "output")


class ReadOnly:
    """The records belong to afterparty: change them with its commands, never here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AttemptInline(ReadOnly, admin.StackedInline):
    model = Attempt
    fields = ATTEMPT_FIELDS
    readonly_fields = ATTEMPT_FIELDS
    extra = 0
    show_change_link = True


@admin.register(Task)
class TaskAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("version", "name", "state", "attempts", "last_started_at", "finished_at")
    list_filter = ("state",)
    search_fields = ("version", "name", "description")
    readonly_fields = ("version", "name", "state", "description", "attempts", "first_started_at",
                       "last_started_at", "finished_at", "last_error")
    inlines = (AttemptInline,)


@admin.register(Attempt)
class AttemptAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("id", "task", "action", "state", "started_at", "duration", "username", "host",
                    "release_id")
    list_filter = ("state", "action", "environment")
    search_fields = ("task__version", "name", "error", "output")
    fields = ("task", *ATTEMPT_FIELDS[1:])
    readonly_fields = fields
