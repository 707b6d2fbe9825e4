"""The outbox: notices held with a task's work (``ctx.notify``) in the attempt's transaction,
and sent by the holder of the environment lock once their attempt succeeded and their time has
come, each marked sent with what every service said."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from afterparty.releases import release_records
from afterparty.session import Session, utc_now

if TYPE_CHECKING:
    from afterparty.long_tasks import LongTask
    from afterparty.records import Fence, Notice
    from afterparty.results import RunResult

log = logging.getLogger("afterparty")

#: ``Notice.purpose`` of a task's own notice (``ctx.notify``).
TASK_NOTICE = "task"


def later(moment: str, seconds: float) -> str:
    """``seconds`` after ``moment``, in the records' format (``utc_now``)."""
    return (datetime.fromisoformat(moment) + timedelta(seconds=seconds)).isoformat(
        timespec="milliseconds")


class NoticeHolder:
    """Holds one attempt's notices (``ctx.notify``): written in the task's transaction, so that
    they commit with its work and its success, or not at all; an ``atomic=False`` task's in its
    batch, or outside one in a transaction of their own (sent only if the attempt succeeds)."""

    def __init__(self, session: Session, version: str, attempt_id: int, fence: Fence,
                 long_task: LongTask) -> None:
        self.session = session
        self.version = version
        self.attempt_id = attempt_id
        self.fence = fence
        self.long_task = long_task

    def hold(self, message: str, title: str | None, required: bool, kind: str,
             after: float | None) -> str:
        """Keep a notice for after the commit (``after`` seconds after the release was first
        deployed here, when given); returns when it is due, in words."""
        session = self.session
        release = session.release()
        records = release_records(session)
        now = utc_now()
        due, when = now, "until the task succeeds"
        if after is not None:
            since = records.first_deployed(release) if release else None
            due = later(since or now, after)
            from afterparty.durations import span_text

            live = f"release {release} has" if release else "the task has"
            when = (f"until the task succeeds and {live} been live {span_text(after)} "
                    f"({due[:16].replace('T', ' ')} UTC)")

        def write() -> None:
            records.hold_notice(self.version, self.attempt_id, release, TASK_NOTICE, None, title,
                                message, kind, required, now, due)

        if self.long_task.atomic or self.long_task.in_batch:
            write()
        else:
            with session.database.connection.transaction_amid_autocommit(), \
                    session.recorder.writing(self.fence):
                write()
        return when


class Sent(NamedTuple):
    """What sending one held notice came to: ``problem`` is None when a service took it (or no
    URL is configured: ``services`` is 0 then)."""

    notice: Notice
    problem: str | None
    services: int


class Outbox:
    """Sends the held notices that are due. Only the holder of the environment lock sends
    (``run``, ``tick``, ``rollback``), so that two processes never send the same notice; a
    crash between sending and marking it sent sends it again (at least once)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        #: The notices this outbox tried: one no service took waits for the next command.
        self.tried: set[int] = set()

    def send_due(self, version: str | None = None) -> list[Sent]:
        """Send every held notice that is due now (of one task, or all), oldest first, once."""
        due = release_records(self.session).due_notices(utc_now(), version)
        return [self.send(notice) for notice in due if notice.id not in self.tried]

    def tell(self, result: RunResult, version: str | None = None) -> None:
        """Send what is due (of one task that just succeeded, or all), counted into ``result``:
        sent to a service, or not delivered (with what went wrong)."""
        for sent in self.send_due(version):
            if sent.problem is not None:
                result.notices_undelivered.append(f"{sent.notice.version}: {sent.problem}")
            elif sent.services:
                result.notices_sent += 1

    def send(self, notice: Notice) -> Sent:
        """Send one notice to its recipient's URLs and mark it sent; one no service took is
        tried again later (or dropped, when it is not ``required``)."""
        import json

        from afterparty.notify import deliver

        self.tried.add(notice.id)
        urls = self.urls_of(notice.recipient)
        # No URL configured: the message is in the task's output already (held there).
        problem, results = deliver(urls, notice.message, notice.title, log, notice.kind) \
            if urls else (None, [])
        records, fence = release_records(self.session), self.session.lock.fence
        with self.session.recorder.writing(fence):
            if problem is None:
                records.mark_sent(notice.id, utc_now(), json.dumps(results))
            else:
                records.mark_not_delivered(notice.id, utc_now(), json.dumps(results),
                                           drop=not notice.required)
        return Sent(notice, problem, len(results))

    def urls_of(self, recipient: str | None) -> list[str]:
        """Where a notice goes: an owner's URLs (``[tool.afterparty.notify.owners]``), else the
        ``notify`` setting."""
        settings = self.session.settings
        if recipient is not None and settings.notify_owners.get(recipient):
            return settings.notify_owners[recipient]
        return settings.notify
