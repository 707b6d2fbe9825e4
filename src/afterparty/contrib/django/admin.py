"""The records in the Django admin: tasks with their state, attempts with their output; nobody
edits a record here, and the decisions a person may take (confirm, resolve, skip) are the admin
actions of ``admin_actions.py``.

The admin reads the records' database alias (``AFTERPARTY["DATABASE"]`` or the project's
routers), the one ``manage.py afterparty`` writes to.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar, cast

from django.contrib import admin
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils import timezone as django_timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from afterparty.contrib.django.admin_actions import DecisionActions
from afterparty.contrib.django.framework import records_alias
from afterparty.contrib.django.models import Attempt, Task

ATTEMPT_FIELDS = ("id", "number", "action", "state", "started", "finished", "took", "username",
                  "host", "pid", "environment", "release_id", "tool_version", "note",
                  "error_text", "output_text")

F = TypeVar("F", bound=Callable[..., Any])


def display(description: str, ordering: str | None = None) -> Callable[[F], F]:
    """``admin.display``, typed."""
    def mark(function: F) -> F:
        return cast(F, admin.display(description=description, ordering=ordering)(function))
    return mark


def local_time(value: str | None) -> str | None:
    """A stored UTC timestamp in the project's time zone (TIME_ZONE or the activated one)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    local: datetime = django_timezone.localtime(moment)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z")


def preformatted(text: str | None) -> SafeString | None:
    """Tracebacks and captured output keep their lines and indentation."""
    if not text:
        return None
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)


class ReadOnly:
    """The records belong to afterparty: change them with its commands, never here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AttemptColumns:
    """An attempt as people read it: numbered within its task, local times, ``1.2 s``."""

    def attempts_queryset(self, queryset: QuerySet[Attempt]) -> QuerySet[Attempt]:
        # Counted, not a window function: a filtered list keeps each attempt's own number.
        earlier = (Attempt.objects.filter(task=OuterRef("task"), id__lte=OuterRef("id"))
                   .order_by().values("task").annotate(count=Count("id")).values("count"))
        return queryset.using(records_alias()).annotate(number_in_task=Subquery(earlier))

    @display(description="attempt", ordering="id")
    def number(self, obj: Any) -> str:
        return f"#{obj.number_in_task}"

    @display(description="started", ordering="started_at")
    def started(self, obj: Attempt) -> str | None:
        return local_time(obj.started_at)

    @display(description="finished", ordering="finished_at")
    def finished(self, obj: Attempt) -> str | None:
        return local_time(obj.finished_at)

    @display(description="duration", ordering="duration")
    def took(self, obj: Attempt) -> str | None:
        return None if obj.duration is None else f"{obj.duration:.1f} s"

    @display(description="error")
    def error_text(self, obj: Attempt) -> SafeString | None:
        return preformatted(obj.error)

    @display(description="output")
    def output_text(self, obj: Attempt) -> SafeString | None:
        return preformatted(obj.output)


class AttemptInline(ReadOnly, AttemptColumns, admin.StackedInline):
    model = Attempt
    fields = ATTEMPT_FIELDS
    readonly_fields = ATTEMPT_FIELDS
    extra = 0
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attempt]:
        return self.attempts_queryset(super().get_queryset(request))


@admin.register(Task)
class TaskAdmin(ReadOnly, DecisionActions):
    list_display = ("version", "name", "description", "state", "waiting_reason", "attempts",
                    "last_started", "finished")
    list_filter = ("state",)
    search_fields = ("version", "name", "description")
    fields = readonly_fields = ("version", "name", "description", "state", "waiting_reason",
                                "attempts", "first_started", "last_started", "finished",
                                "last_error_text")
    inlines = (AttemptInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Task]:
        return super().get_queryset(request).using(records_alias())

    @display(description="first started", ordering="first_started_at")
    def first_started(self, obj: Task) -> str | None:
        return local_time(obj.first_started_at)

    @display(description="last started", ordering="last_started_at")
    def last_started(self, obj: Task) -> str | None:
        return local_time(obj.last_started_at)

    @display(description="finished", ordering="finished_at")
    def finished(self, obj: Task) -> str | None:
        return local_time(obj.finished_at)

    @display(description="last error")
    def last_error_text(self, obj: Task) -> SafeString | None:
        return preformatted(obj.last_error)


@admin.register(Attempt)
class AttemptAdmin(ReadOnly, AttemptColumns, admin.ModelAdmin):
    list_display = ("id", "task", "number", "action", "state", "started", "took", "username",
                    "host", "release_id")
    list_filter = ("state", "action", "environment")
    search_fields = ("task__version", "name", "error", "output")
    fields = readonly_fields = ("task", *ATTEMPT_FIELDS[1:])

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attempt]:
        return self.attempts_queryset(super().get_queryset(request))
