"""Decisions from the Django admin: confirm, resolve and skip on the selected release tasks, each
allowed by a Django permission and made through ``afterparty.decisions``, as the commands make
them, in the name of the admin's user."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.template.response import TemplateResponse

from afterparty import decisions
from afterparty.contrib.django.configuration import django_afterparty_settings
from afterparty.contrib.django.framework import DjangoFramework, records_alias
from afterparty.contrib.django.models import Task
from afterparty.errors import AfterpartyError, LockBusyError, UsageError
from afterparty.session import Session
from afterparty.states import Action, MoveRefused, State, next_state, state_of

F = TypeVar("F", bound=Callable[..., Any])

# The states a decision page may say a task was in ("seen_<version>"); anything else was not
# written by the page.
STATE_VALUES = frozenset(state.value for state in State)
# A request does not wait for a deploy to finish: the person tries again after it.
CONNECT_TIMEOUT = 10.0

ApplyDecision = Callable[[Session, str, str, str, State], list[decisions.Decision]]


@dataclass(frozen=True)
class AdminDecision:
    """One admin action: who may take it (``has_<permission>_permission``), what its page asks,
    and the decision it makes."""

    name: str
    permission: str
    title: str
    note_label: str
    submit: str
    apply: ApplyDecision
    move: Action  # the decision checked against the transition table before the page is shown
    note_required: bool = False
    choices: tuple[tuple[str, str], ...] = ()

    def refusal(self, version: str, state: State) -> str | None:
        """Why this decision does not apply to a task in ``state`` (states.offered), or None."""
        try:
            next_state(self.move, state)
        except MoveRefused as refused:
            return f"task {version} {refused}"
        return None


def _refuse_to_wait(holder: str | None) -> None:
    """Called when the lock is taken: a run is going on in this environment."""
    raise LockBusyError(f"a run holds the lock of this environment{f' ({holder})' if holder else ''}: "
                        "try again when it is over")


CONFIRM = AdminDecision(
    "confirm_steps", "confirm", "Confirm human steps", "Note (what was done)", "Confirm",
    lambda session, version, choice, note, seen: decisions.confirm(
        session, version, note or None, _refuse_to_wait, expected=seen),
    move=Action.CONFIRM)
RESOLVE = AdminDecision(
    "resolve_tasks", "resolve", "Resolve failed or interrupted tasks", "Note (why)", "Resolve",
    lambda session, version, choice, note, seen: decisions.resolve(
        session, version, choice, note or None, _refuse_to_wait, expected=seen),
    move=Action.RESOLVE_RETRY,  # retry, done and skip apply to the same states
    choices=(("retry", "Retry: run it again on the next run"),
             ("done", "Done: record it as done without running it"),
             ("skip", "Skip: it will not run")))
SKIP = AdminDecision(
    "skip_tasks", "skip", "Skip tasks that have not run", "Reason (kept in the history)", "Skip",
    lambda session, version, choice, note, seen: decisions.skip(
        session, [version], note, _refuse_to_wait, expected=seen),
    move=Action.SKIP, note_required=True)
PAUSE = AdminDecision(
    "pause_tasks", "pause", "Pause running tasks at their next batch", "Note (why)", "Pause",
    lambda session, version, choice, note, seen: decisions.pause(
        session, version, note or None, expected=seen),
    move=Action.PAUSE)
RESUME = AdminDecision(
    "resume_tasks", "pause", "Resume paused tasks", "Note (why)", "Resume",
    lambda session, version, choice, note, seen: decisions.resume(
        session, version, note or None, _refuse_to_wait, expected=seen),
    move=Action.RESUME)
CANCEL = AdminDecision(
    "cancel_tasks", "pause", "Cancel tasks", "Note (why)", "Cancel",
    lambda session, version, choice, note, seen: decisions.cancel(
        session, version, note or None, _refuse_to_wait, expected=seen),
    move=Action.CANCEL)
DECISIONS = {decision.name: decision for decision in (CONFIRM, RESOLVE, SKIP, PAUSE, RESUME, CANCEL)}


def action(description: str, permission: str) -> Callable[[F], F]:
    """``admin.action``, typed."""
    def mark(function: F) -> F:
        return cast(F, admin.action(description=description, permissions=[permission])(function))
    return mark


def admin_session(request: HttpRequest) -> Session:
    """The records' environment as ``manage.py afterparty`` sees it, deciding in the name of the
    admin's user."""
    session = DjangoFramework().session(django_afterparty_settings(), CONNECT_TIMEOUT)
    session.act_as(f"{request.user.get_username()} via Django admin")
    return session


class DecisionActions(admin.ModelAdmin):
    """The admin actions on release tasks; each needs its permission (``afterparty.confirm_task``,
    ``afterparty.resolve_task``, ``afterparty.skip_task``) and asks for a note on a page of its
    own before anything is recorded."""

    actions = tuple(DECISIONS)
    decision_template = "admin/afterparty/task/decide.html"

    def has_confirm_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("afterparty.confirm_task"))

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("afterparty.resolve_task"))

    def has_skip_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("afterparty.skip_task"))

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("afterparty.pause_task"))

    @action("Confirm the selected human steps…", "confirm")
    def confirm_steps(self, request: HttpRequest, queryset: QuerySet[Task]) -> HttpResponse | None:
        return self.decide(request, queryset, CONFIRM)

    @action("Resolve the selected failed or interrupted tasks…", "resolve")
    def resolve_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> HttpResponse | None:
        return self.decide(request, queryset, RESOLVE)

    @action("Skip the selected tasks that have not run…", "skip")
    def skip_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> HttpResponse | None:
        return self.decide(request, queryset, SKIP)

    @action("Pause the selected running tasks at their next batch…", "pause")
    def pause_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> HttpResponse | None:
        return self.decide(request, queryset, PAUSE)

    @action("Resume the selected paused tasks…", "pause")
    def resume_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> HttpResponse | None:
        return self.decide(request, queryset, RESUME)

    @action("Cancel the selected tasks…", "pause")
    def cancel_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> HttpResponse | None:
        return self.decide(request, queryset, CANCEL)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """A decision the user may not take is refused with a message (Django would only say
        that no action was selected)."""
        wanted = DECISIONS.get(request.POST.get("action", "")) if request.method == "POST" else None
        if (wanted is not None and self.has_view_or_change_permission(request)
                and not getattr(self, f"has_{wanted.permission}_permission")(request)):
            self.message_user(request, f"You may not {wanted.permission} release tasks: it takes "
                                       f"the permission afterparty.{wanted.permission}_task. "
                                       "Nothing was changed.", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        return cast(HttpResponse, super().changelist_view(request, extra_context))

    def decide(self, request: HttpRequest, queryset: QuerySet[Task],
               decision: AdminDecision) -> HttpResponse | None:
        """First the page that shows the tasks and asks for the note; once it is sent, the
        decision on each task that is still in the state the page showed."""
        tasks = list(queryset.using(records_alias()).order_by("version"))
        if request.POST.get("post") == "yes":
            return self.apply(request, tasks, decision)
        refused = [(t, decision.refusal(t.version, state_of(t.state))) for t in tasks]
        for _, reason in refused:
            if reason:
                self.message_user(request, f"{reason}. Nothing was changed.", messages.ERROR)
        ready = [task for task, reason in refused if reason is None]
        return self.decision_page(request, ready, decision) if ready else None

    def apply(self, request: HttpRequest, tasks: list[Task], decision: AdminDecision) -> HttpResponse | None:
        note = request.POST.get("note", "").strip()
        choice = request.POST.get("choice", "")
        if decision.note_required and not note:
            return self.decision_page(request, tasks, decision, "Write why: it is kept in the history.")
        if decision.choices and choice not in dict(decision.choices):
            return self.decision_page(request, tasks, decision, "Choose what to do.")
        shown = {task.version: request.POST.get(f"seen_{task.version}") for task in tasks}
        if not all(value in STATE_VALUES for value in shown.values()):
            return HttpResponseBadRequest("This form does not say which state each task was in "
                                          "when it was shown: nothing was changed. Choose the "
                                          "action again from the list.", content_type="text/plain")
        session = admin_session(request)
        try:
            for task in tasks:
                seen = state_of(shown[task.version])
                reason = decision.refusal(task.version, seen)
                try:
                    if reason:
                        raise UsageError(reason)
                    (made,) = decision.apply(session, task.version, choice, note, seen)
                except AfterpartyError as refusal:
                    self.message_user(request, f"{refusal}. Nothing was changed.", messages.ERROR)
                else:
                    self.message_user(request, f"{made.version} {made.name}: {made.before} → "
                                               f"{made.after}, recorded as decided by "
                                               f"{request.user.get_username()}.", messages.SUCCESS)
        finally:
            session.close()
        return None

    def decision_page(self, request: HttpRequest, tasks: list[Task], decision: AdminDecision,
                      problem: str | None = None) -> HttpResponse:
        """The intermediate page: the tasks as they are now, the choice and the note."""
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "title": decision.title,
            "opts": self.model._meta,
            "tasks": [(task, self.instructions(task)) for task in tasks],
            "decision": decision,
            "problem": problem,
            "note": request.POST.get("note", "") if problem else "",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, self.decision_template, context)

    def instructions(self, task: Task) -> str | None:
        """What the person deciding should read: a human step's instructions (its last
        attempt's output), else the last error."""
        if state_of(task.state) is State.AWAITING:
            last = task.attempt_set.using(records_alias()).order_by("-id").first()
            return last.output if last is not None else None
        return cast("str | None", task.last_error)
