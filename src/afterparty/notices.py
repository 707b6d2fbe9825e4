"""The runner's own notices (a failure, a held task, a human step, a run's summary): what
they say and of which kind, sent through the ``notify`` setting."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from afterparty.results import RunResult, held_message
from afterparty.session import Session
from afterparty.states import NEEDS_ATTENTION

if TYPE_CHECKING:
    from afterparty.definition import Task
    from afterparty.loader import TaskFile

# The console's address as people open it (``afterparty web``): notices link to a task's page.
WEB_URL_VARIABLE = "AFTERPARTY_WEB_URL"


def console_link(environment: str, version: str) -> str | None:
    """The address of a task's page in the web console, when ``AFTERPARTY_WEB_URL`` is set."""
    base = os.environ.get(WEB_URL_VARIABLE, "").strip().rstrip("/")
    if not base:
        return None
    from urllib.parse import quote

    return f"{base}/env/{quote(environment, safe='')}/tasks/{quote(version, safe='')}"


class Notices:
    """Tells people, away from the deploy's log, what a run needs from them."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def send(self, message: str, title: str, kind: str) -> None:
        """A runner's notice (failure, hold, human step, summary), of a kind a chat shows by its
        color; a failure to send it is only logged."""
        if not self.session.settings.notify:
            return
        import logging

        from afterparty.notify import send_notification

        send_notification(self.session.settings.notify, message, title,
                          logging.getLogger("afterparty"), kind)

    def where(self) -> str:
        """Environment, release and host, for a notice read away from the deploy's log."""
        origin = self.session.origin()
        release = f"release {origin.release_id}" if origin.release_id else "no release id"
        return f"{self.session.settings.environment} ({release}, host {origin.host})"

    def link(self, version: str, before: str = "\n") -> str:
        """The task's page in the console, after ``before``; empty without a console address."""
        address = console_link(self.session.settings.environment, version)
        return f"{before}{address}" if address else ""

    def task_failed(self, task_file: TaskFile, error: str | None) -> None:
        """A task failed (after its retries): what broke, where, and what to type next."""
        from afterparty.records import error_summary

        command = self.session.settings.command
        self.send(f"afterparty: release task {task_file.label} failed in {self.where()}: "
                  f"{error_summary(error)}\nSee it: {command} show {task_file.version}"
                  f"{self.link(task_file.version, before=' or ')}\n"
                  f"The next `{command} run` tries it again.",
                  "Release task failed", "failure")

    def task_held(self, task_file: TaskFile) -> None:
        """An interrupted task marked ``on_interrupt="hold"`` stopped the run."""
        self.send(f"afterparty in {self.where()}: "
                  f"{held_message(task_file, self.session.settings.command)}"
                  f"{self.link(task_file.version)}",
                  "Release task held", "warning")

    def step_awaits(self, task_file: TaskFile, task: Task, instructions: str) -> None:
        """A human step awaits confirmation: its instructions, and how to confirm it."""
        whom = task.owner or "a person"
        self.send(f"Release step for {whom} in {self.where()}: {task.description}\n\n"
                  f"{instructions}\n\nWhen it is done: {self.session.settings.command} confirm "
                  f"{task_file.version}{self.link(task_file.version, before=' or ')}",
                  f"Release step awaits {whom}", "warning")

    def run_summary(self, result: RunResult) -> None:
        """The summary of a run that did something (``notify_summary``)."""
        if not (self.session.settings.notify_summary and result.did_something):
            return
        command = self.session.settings.command
        lines = [f"{o.version} {o.name}: {o.state}"
                 + (self.link(o.version, before=" ") if o.state in NEEDS_ATTENTION else "")
                 for o in result.outcomes]
        lines += [f"{a.version} {a.name}: awaits {a.owner or 'a person'} "
                  f"({command} confirm {a.version}){self.link(a.version, before=' ')}"
                  for a in result.awaiting]
        lines += [f"{v}: waiting ({reason})" for v, reason in result.waiting.items()]
        if result.held is not None:
            lines.append(held_message(result.held, command) + self.link(result.held.version, " "))
        if result.stop_note:
            lines.append(result.stop_note)
        kind = ("failure" if result.failed else "warning" if result.held or result.awaiting
                or result.stopped_by is not None else "success")
        self.send(f"afterparty run in {self.where()}:\n" + "\n".join(lines),
                     "Release tasks ran", kind)
