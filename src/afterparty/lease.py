"""A task's lease: one worker at a time runs a background task, fenced like the environment lock
(the same protocol: fencing.py) and without it (a long backfill never blocks a deploy)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from afterparty.fencing import FencedLock, lease_key
from afterparty.recorder import Recorder
from afterparty.states import Guard

if TYPE_CHECKING:
    from afterparty.backends.base import Database
    from afterparty.records import Fence
    from afterparty.session import Session


def lock_name(prefix: str, version: str) -> str:
    """What the database's lock for the task's lease is made from (the environment lock's is
    the table prefix alone); each backend derives a valid lock from it (hashed when long)."""
    return f"{prefix}task:{version}"


class TaskLease(FencedLock):
    """The lease of one task: a database lock under the task's own name, with its own epoch."""

    def __init__(self, database: Database, recorder: Recorder, version: str) -> None:
        super().__init__(database.lock(lock_name(recorder.prefix, version)), recorder,
                         lease_key(version), Guard.LEASE)
        self.version = version


def lease_if_free(session: Session, version: str) -> TaskLease | None:
    """The task's lease, taken with a new epoch (a worker that lost it can commit nothing more),
    when no worker holds it; None while one does. Its lock is closed with the session (an
    SQLite file lock's descriptor must outlive the connection)."""
    lease = TaskLease(session.database, session.recorder, version)
    session.other_locks.append(lease.database_lock)
    if lease.try_take():
        return lease
    lease.release()
    return None


@contextmanager
def orphans_of(session: Session, running: list[str]) -> Iterator[dict[str, Fence]]:
    """Of the versions recorded ``running``, those nobody runs any more, each with the fence of
    its lease: a runner holding the environment lock is the only inline runner, so only a worker
    can hold a lease, and a lease that can be taken belongs to a worker (or runner) that died.
    Their leases are held inside the block, with their epochs moved on; the lease of a task
    that a live worker runs stays with it."""
    taken: list[TaskLease] = []
    try:
        for version in running:
            lease = lease_if_free(session, version)
            if lease is not None:
                taken.append(lease)
        yield {lease.version: lease.fence for lease in taken}
    finally:
        for lease in taken:
            lease.release()
