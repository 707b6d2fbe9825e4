"""A task's lease: one worker at a time runs a background task, fenced like the environment lock,
and without the environment lock (a long backfill never blocks a deploy)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from afterparty.errors import LockLostError
from afterparty.lock import EnvironmentLock
from afterparty.recorder import Recorder

if TYPE_CHECKING:
    from afterparty.backends.base import Database
    from afterparty.session import Session


def fence_key(version: str) -> str:
    """The meta row holding a task's lease epoch. Meta keys hold 14 characters, as a version
    does: ``L`` and the version in hexadecimal (12 digits) keep it one-to-one."""
    return f"L{int(version):012x}"


def lock_name(prefix: str, version: str) -> str:
    """What the database's lock for the task's lease is made from (the environment lock's is
    the table prefix alone); each backend derives a valid lock from it (hashed when long)."""
    return f"{prefix}task:{version}"


class TaskLease(EnvironmentLock):
    """The lease of one task: the same database lock as the environment lock, under the task's
    own name, with its own epoch. ``check`` is what an attempt calls before it starts."""

    def __init__(self, database: Database, recorder: Recorder, version: str) -> None:
        super().__init__(database.lock(lock_name(recorder.prefix, version)), recorder)
        self.version = version

    def take(self) -> bool:
        """Take the lease without waiting; once taken, a new lease epoch fences every earlier
        holder. False when someone else holds it (another delivery of the task is running it)."""
        if not self.database_lock.try_acquire():
            return False
        try:
            self.recorder.ensure_schema()
            self.recorder.begin_epoch(None, fence_key(self.version))
        except BaseException:
            self.release()
            raise
        return True

    def check(self) -> None:
        if not self.database_lock.is_held():
            raise LockLostError(
                f"this worker lost the lease of task {self.version} (its database session ended: "
                "killed, an idle timeout, the network): it stopped before running it")


def lease_if_free(session: Session, version: str) -> TaskLease | None:
    """The task's lease, held, when no worker holds it; None while one does. Its lock is closed
    with the session (an SQLite file lock's descriptor must outlive the connection)."""
    lease = TaskLease(session.database, session.recorder, version)
    session.other_locks.append(lease.database_lock)
    if lease.database_lock.try_acquire():
        return lease
    lease.release()
    return None


@contextmanager
def orphans_of(session: Session, running: list[str]) -> Iterator[list[str]]:
    """Of the versions recorded ``running``, those nobody runs any more: a runner holding the
    environment lock is the only inline runner, so only a worker can hold a lease, and a lease
    that can be taken belongs to a worker (or runner) that died. Their leases are held inside
    the block, with their epochs moved on (a worker that lost its lease can commit nothing);
    the lease of a task that a live worker runs stays with it."""
    taken: list[TaskLease] = []
    try:
        for version in running:
            lease = lease_if_free(session, version)
            if lease is not None:
                taken.append(lease)
        if taken:
            with session.recorder.writing():
                for lease in taken:
                    session.recorder.next_epoch(fence_key(lease.version))
        yield [lease.version for lease in taken]
    finally:
        for lease in taken:
            lease.release()
