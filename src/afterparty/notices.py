"""The runner's own notices (a failure, a held task, a human step, a run's summary): what
they say and of which kind, sent through the ``notify`` setting."""

from __future__ import annotations

from afterparty.results import RunResult, held_message
from afterparty.session import Session


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

    def run_summary(self, result: RunResult) -> None:
        """The summary of a run that did something (``notify_summary``)."""
        if not (self.session.settings.notify_summary and result.did_something):
            return
        command = self.session.settings.command
        lines = [f"{o.version} {o.name}: {o.state}" for o in result.outcomes]
        lines += [f"{a.version} {a.name}: awaits {a.owner or 'a person'} "
                  f"({command} confirm {a.version})" for a in result.awaiting]
        lines += [f"{v}: waiting ({reason})" for v, reason in result.waiting.items()]
        if result.held is not None:
            lines.append(held_message(result.held, command))
        if result.stop_note:
            lines.append(result.stop_note)
        kind = ("failure" if result.failed else "warning" if result.held or result.awaiting
                or result.stopped_by is not None else "success")
        self.send(f"afterparty run in {self.where()}:\n" + "\n".join(lines),
                     "Release tasks ran", kind)
