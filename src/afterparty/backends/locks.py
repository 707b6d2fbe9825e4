"""The shape shared by the locks a server keeps for a session (PostgreSQL's advisory locks,
MySQL's GET_LOCK); the interface every lock offers is base.DatabaseLock."""

from __future__ import annotations

import contextlib
from typing import ClassVar

from afterparty.backends.base import Database, DatabaseLock
from afterparty.errors import DatabaseError


class SessionLock(DatabaseLock):
    """A lock the server keeps for a session (PostgreSQL's advisory locks, MySQL's GET_LOCK),
    taken on a session of its own so that the runner's transactions never touch it; the
    server frees it when that session ends. Subclasses give the statements."""

    #: Sets up the lock's session: out of the server's idle timeouts.
    keep_alive: ClassVar[tuple[str, ...]] = ()
    #: Takes the lock without waiting; one row, one column, true when taken.
    take: ClassVar[str]
    #: Whether this session holds the lock; one row, one column.
    owns: ClassVar[str]
    #: Gives back every lock of the session.
    give_back: ClassVar[str]
    #: Whether no session holds the lock (asked on the main session); one row, one column.
    free: ClassVar[str]

    def __init__(self, database: Database, key: object) -> None:
        self.database = database
        self.key = key
        self.session: Database | None = None

    def try_acquire(self) -> bool:
        if self.session is None:
            self.session = self.database.twin()
            for statement in self.keep_alive:
                self.session.execute(statement)
        (got,), = self.session.query(self.take, (self.key,))
        return bool(got == 1 or got is True)

    def is_held(self) -> bool:
        if self.session is None:
            return False
        try:
            (mine,), = self.session.query(self.owns, self.owns_params())
        except DatabaseError:
            return False
        return bool(mine)

    def owns_params(self) -> tuple[object, ...]:
        """The parameters of ``owns`` and ``free``: the key, unless the server shows it otherwise."""
        return (self.key,)

    def is_free(self) -> bool:
        try:
            (free,), = self.database.query(self.free, self.owns_params())
        finally:
            self.database.rollback()
        return bool(free)

    def release(self) -> None:
        if self.session is None:
            return
        session, self.session = self.session, None
        with contextlib.suppress(DatabaseError):
            session.query(self.give_back)
        session.close()
