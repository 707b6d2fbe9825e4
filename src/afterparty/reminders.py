"""Reminders of human steps that wait (``remind_every``, ``escalate_after``, ``escalate_to``):
which are due, what they say (how long the step has waited, the console's page), and to whom;
``tick`` holds them in the outbox under the lock and sends them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, NamedTuple

from afterparty.durations import DurationError, seconds_of, span_text
from afterparty.notices import Notices
from afterparty.releases import release_records
from afterparty.session import Session, utc_now
from afterparty.states import State

if TYPE_CHECKING:
    from afterparty.loader import TaskFile

REMINDER, ESCALATION = "reminder", "escalation"


class Plan(NamedTuple):
    """A human step's reminders, as its ``@task`` declares them."""

    task_file: TaskFile
    description: str
    owner: str | None
    remind_every: float | None
    escalate_after: float | None
    escalate_to: str | None


class Reminder(NamedTuple):
    """One reminder (or escalation) to send now."""

    version: str
    purpose: str
    #: A name of ``notify.owners`` (the owner, or ``escalate_to``); None: the ``notify`` setting.
    recipient: str | None
    title: str
    message: str

    def line(self) -> str:
        """What ``tick`` prints about it."""
        whom = self.recipient or "the notify URLs"
        return f"{self.purpose} to {whom}: {self.title}"


def reminder_plans(session: Session, awaiting: dict[str, str],
                   files: list[TaskFile]) -> dict[str, Plan]:
    """The human steps among ``awaiting`` (version -> since when) that remind anyone, read from
    their files' syntax (a file whose options are not literals is imported)."""
    by_version = {task_file.version: task_file for task_file in files}
    plans = {}
    for version in awaiting:
        task_file = by_version.get(version)
        if task_file is not None:
            plan = _plan(session, task_file)
            if plan is not None:
                plans[version] = plan
    return plans


def _plan(session: Session, task_file: TaskFile) -> Plan | None:
    from afterparty.facts import read_source_facts

    facts = read_source_facts(task_file.path)
    if facts.reminders is None:  # only an import tells
        import sys

        from afterparty.errors import TaskFileError
        from afterparty.loader import load_tasks

        if session.settings.project_root not in sys.path:
            sys.path.insert(0, session.settings.project_root)
        try:
            task = load_tasks([task_file])[task_file.version]
        except TaskFileError:
            return None  # `run` and `check` report it
        every, after, to = task.remind_every, task.escalate_after, task.escalate_to
        owner, description = task.owner, task.description
    else:
        try:
            every, after = (None if value is None else seconds_of(value, name) for name, value in
                            (("remind_every", facts.reminders[0]), ("escalate_after", facts.reminders[1])))
        except DurationError:
            return None  # the import that `run` makes refuses it
        to = facts.reminders[2] if isinstance(facts.reminders[2], str) else None
        owner, description = facts.owner, facts.description
    if every is None and (after is None or to is None):
        return None
    return Plan(task_file, description, owner, every, after, to)


def due_reminders(session: Session, plans: dict[str, Plan], awaiting: dict[str, str],
                  now: datetime | None = None) -> list[Reminder]:
    """The reminders due now: to the owner every ``remind_every`` since the step began to await
    (or since the last reminder); to ``escalate_to`` too once it has waited ``escalate_after``
    (once at that time, then with each reminder)."""
    if not plans:
        return []
    now = now or datetime.now(timezone.utc)
    last = release_records(session).last_reminders(list(plans))
    due = []
    for version, plan in plans.items():
        since = datetime.fromisoformat(awaiting[version])
        reminded = _since(last.get((version, REMINDER)), since)
        escalated = _since(last.get((version, ESCALATION)), since)
        waited = (now - since).total_seconds()
        remind = plan.remind_every is not None and (
            now - (reminded or since)).total_seconds() >= plan.remind_every
        escalate = plan.escalate_after is not None and plan.escalate_to is not None \
            and waited >= plan.escalate_after and (remind or escalated is None)
        if remind:
            due.append(_reminder(session, plan, REMINDER, plan.owner, waited))
        if escalate:
            due.append(_reminder(session, plan, ESCALATION, plan.escalate_to, waited))
    return due


def _since(moment: str | None, since: datetime) -> datetime | None:
    """A reminder's time, if it was made while the step awaits now (not an earlier wait)."""
    if moment is None:
        return None
    when = datetime.fromisoformat(moment)
    return when if when >= since else None


def _reminder(session: Session, plan: Plan, purpose: str, recipient: str | None,
              waited: float) -> Reminder:
    """A reminder in words: what waits for whom and how long, what to do, where to confirm."""
    notices, task_file = Notices(session), plan.task_file
    command, whom = session.settings.command, plan.owner or "a person"
    confirm = (f"When it is done: {command} confirm {task_file.version}"
               f"{notices.link(task_file.version, before=' or ')}")
    step = f"the release step {task_file.label} ({plan.description})" if plan.description \
        else f"the release step {task_file.label}"
    if purpose == REMINDER:
        title = f"Reminder: a release step awaits {whom}"
        text = f"Reminder: {step} awaits {whom} in {notices.where()}; it has waited {span_text(waited)}."
    else:
        title = f"Escalation: a release step awaits {whom} for {span_text(waited)}"
        text = (f"Escalation to {recipient}: {step} awaits {whom} in {notices.where()}; it has "
                f"waited {span_text(waited)}, more than {span_text(plan.escalate_after or 0)}.")
    instructions = _instructions(session, task_file.version)
    body = f"{text}\n\n{instructions}\n\n{confirm}" if instructions else f"{text}\n\n{confirm}"
    return Reminder(task_file.version, purpose, recipient, title, body)


def _instructions(session: Session, version: str) -> str:
    """What the step asks, as it was recorded when it began to await."""
    attempts = session.recorder.read_attempts(version)
    return (attempts[-1].output or "").strip() if attempts else ""


def hold_reminders(session: Session, plans: dict[str, Plan]) -> list[Reminder]:
    """Holding the lock: the reminders due now, of the steps that still await as they did,
    held in the outbox (sent by ``Outbox``: retried until delivered, never made twice)."""
    records = session.recorder.read_records()
    awaiting = {version: record.finished_at or "" for version, record in records.items()
                if version in plans and record.state == State.AWAITING.value and record.finished_at}
    due = due_reminders(session, {v: p for v, p in plans.items() if v in awaiting}, awaiting)
    if not due:
        return []
    keeper, fence, now = release_records(session), session.lock.fence, utc_now()
    release = session.release()
    with session.recorder.writing(fence):
        for reminder in due:
            keeper.hold_notice(reminder.version, None, release, reminder.purpose,
                               reminder.recipient, reminder.title, reminder.message, "warning",
                               True, now, now)
    return due
