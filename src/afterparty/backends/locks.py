"""The environment lock as a database keeps it: the interface lock.py drives, and the shape
shared by the locks a server keeps for a session."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from afterparty.errors import DatabaseError

if TYPE_CHECKING:
    from afterparty.backends.base import Database


class DatabaseLock(ABC):
    """The environment lock as one database keeps it; the server or the OS frees it when
    the holder dies. lock.py drives it (waiting, epoch, checks)."""

    @abstractmethod
    def try_acquire(self) -> bool:
        """Take the lock without waiting; True when this runner now holds it."""

    @abstractmethod
    def is_held(self) -> bool:
        """Whether this runner still holds it (its session is alive and owns the lock)."""

    @abstractmethod
    def release(self) -> None:
        """Give it back (failing is harmless: a closed session's lock is freed anyway)."""

    @abstractmethod
    def holder(self) -> str | None:
        """Who holds it, as far as the database can tell."""

    def guards_commit(self) -> bool:
        """Whether a commit made now still lands in the database this lock guards; asked just
        before each fenced commit, so it costs no round trip. A lock a server keeps for a
        session always does: the session, and so the lock, lives in that one database."""
        return True

    def close(self) -> None:
        """Free what the lock keeps open; called once the database is closed."""
        self.release()


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
        """The parameters of ``owns``: the key, unless the server shows it otherwise."""
        return (self.key,)

    def release(self) -> None:
        if self.session is None:
            return
        session, self.session = self.session, None
        with contextlib.suppress(DatabaseError):
            session.query(self.give_back)
        session.close()
