"""This environment's releases as people need to know them: the release deployed now and how
long it has been live (``live_for``, ``after=``), the releases that a deploy of an older one
rolled back (tasks that ran in them and whose files are gone now), and the notices still held."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from datetime import datetime, timezone
from typing import TYPE_CHECKING, NamedTuple

from afterparty.durations import ReleaseClock, elapsed_text
from afterparty.release_records import ReleaseRecords
from afterparty.session import Session, utc_now
from afterparty.states import ROLLBACK_FROM, state_of

if TYPE_CHECKING:
    from afterparty.records import Notice


def release_records(session: Session) -> ReleaseRecords:
    """The records of releases, sources and notices of a session's environment."""
    return ReleaseRecords(session.database, session.settings.table_prefix)


def release_clock(session: Session, record: bool = False) -> ReleaseClock:
    """The release deployed now and since when it is live here; ``record``: a ``run`` records
    its deployment first, if it is new here (or was rolled back since). Not recorded and not
    to be (a dry run), it counts as deployed now."""
    release = session.release()
    if release is None:
        return ReleaseClock(None, None)
    records = release_records(session)
    if record:
        records.record_deployed(release, utc_now())
    since = records.first_deployed(release)
    return ReleaseClock(release, since if since is not None or record else utc_now())


class RolledBack(NamedTuple):
    """A release a deploy rolled back: tasks ran in it, it was deployed here after the release
    deployed now, and the files of these tasks are gone."""

    release: str
    #: (version, name) of each task, in version order.
    tasks: list[tuple[str, str]]

    @property
    def labels(self) -> list[str]:
        return [f"{version}_{name}" if name else version for version, name in self.tasks]


def rolled_back(gone: dict[str, str], names: dict[str, str]) -> list[RolledBack]:
    """The releases rolled back, from the tasks of later releases whose files are gone (version
    -> release), with the tasks' names."""
    by_release: dict[str, list[tuple[str, str]]] = {}
    for version, release in sorted(gone.items()):
        by_release.setdefault(release, []).append((version, names.get(version, "")))
    return [RolledBack(release, tasks) for release, tasks in by_release.items()]


def named(session: Session, gone: dict[str, str]) -> list[RolledBack]:
    """The releases rolled back, from the tasks found gone without the lock, with their names."""
    if not gone:
        return []
    records = session.recorder.read_records()
    return rolled_back(gone, {version: record.name for version, record in records.items()})


def rolled_back_here(session: Session, present: AbstractSet[str]) -> list[RolledBack]:
    """The releases a deploy of the release deployed now rolled back: tasks ran in them, they
    were deployed here after it, and its files lack those tasks (which ran, and were not
    reverted since)."""
    release = session.release()
    if release is None:
        return []
    ran_later = release_records(session).ran_later(release)
    if not ran_later:
        return []
    records = session.recorder.read_records()
    gone = {version: later for version, later in ran_later.items() if version not in present
            and version in records and state_of(records[version].state) in ROLLBACK_FROM}
    return rolled_back(gone, {version: records[version].name for version in gone})


class HeldNotice(NamedTuple):
    """A notice not sent yet, and why: it waits for its time, or no service took it yet."""

    notice: Notice
    #: ``waiting: release 4f2c9e1 live for 12 min of 30`` or ``not delivered after 2 tries``.
    reason: str
    undelivered: bool


def held_notices(session: Session) -> list[HeldNotice]:
    """The notices still held here (their task succeeded), each with why."""
    records = release_records(session)
    held = records.held_notices()
    if not held:
        return []
    deployed = {r.release_id: r.first_deployed_at for r in records.read_releases()
                if r.rolled_back_at is None}
    now = datetime.now(timezone.utc)
    return [_why(notice, deployed, now) for notice in held]


def _why(notice: Notice, deployed: dict[str, str], now: datetime) -> HeldNotice:
    due = datetime.fromisoformat(notice.due_at)
    if due > now:
        since = deployed.get(notice.release_id or "")
        if since is not None and notice.release_id:
            start = datetime.fromisoformat(since)
            lived = elapsed_text((now - start).total_seconds(), (due - start).total_seconds())
            return HeldNotice(notice, f"waiting: release {notice.release_id} live for {lived}",
                              False)
        return HeldNotice(notice, f"waiting until {notice.due_at[:19].replace('T', ' ')} UTC", False)
    if notice.tries:
        return HeldNotice(notice, f"not delivered after {notice.tries} tr"
                                  f"{'y' if notice.tries == 1 else 'ies'}", True)
    return HeldNotice(notice, "due: the next `afterparty run` or `afterparty tick` sends it", False)

