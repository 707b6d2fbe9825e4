"""One environment as a command works with it: settings, database, recorder, lock and origin."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from afterparty.config import Settings, detect_release
from afterparty.errors import DatabaseError
from afterparty.lock import EnvironmentLock, LockOutcome
from afterparty.recorder import Recorder
from afterparty.records import NAME_LIMIT, Origin, storable
from afterparty.records import utc_now as utc_now  # where the commands have always found it

if TYPE_CHECKING:
    from afterparty.backends.base import Database, DatabaseLock
    from afterparty.backends.url import DatabaseURL
    from afterparty.fencing import FencedLock


class Session:
    """Opens the database lazily, so that commands which need no records never connect."""

    def __init__(self, settings: Settings, connect_timeout: float = 30.0,
                 database: Database | None = None) -> None:
        """``database``, when given, is a connected one (a framework's connection)."""
        from afterparty.backends.url import parse_url

        self.settings = settings
        self.url: DatabaseURL = (database.url if database is not None
                                 else parse_url(settings.database_url, settings.database_url_source))
        self.connect_timeout = connect_timeout
        self._database = database
        self._recorder: Recorder | None = None
        self._lock: EnvironmentLock | None = None
        self._origin: Origin | None = None
        #: Other locks taken in this session (tasks' leases): closed after the database, as the
        #: environment lock is (an SQLite file lock's descriptor must outlive the connection).
        self.other_locks: list[DatabaseLock] = []

    @property
    def database(self) -> Database:
        if self._database is None:
            from afterparty.backends import open_database

            self._database = open_database(self.url, self.connect_timeout)
        return self._database

    @property
    def missing_database_file(self) -> str | None:
        """The SQLite file this environment would live in, when it does not exist yet: commands
        that only read (status, show, verify) say "no records yet" instead of creating it."""
        if self._database is not None or self.url.backend != "sqlite":
            return None
        path = self.url.database
        if not path or path == ":memory:" or path.startswith("file:") or os.path.exists(path):
            return None
        return path

    @property
    def recorder(self) -> Recorder:
        if self._recorder is None:
            self._recorder = Recorder(self.database, self.settings.table_prefix)
        return self._recorder

    @property
    def lock(self) -> EnvironmentLock:
        if self._lock is None:
            self._lock = EnvironmentLock(self.database.lock(self.settings.table_prefix), self.recorder)
        return self._lock

    @property
    def fence_lock(self) -> FencedLock:
        """The lock whose fence guards this session's writes: the environment lock (a worker's
        session: its task's lease)."""
        return self.lock

    @contextmanager
    def locked(self, wait: float = 300.0, if_busy: str = "wait",
               on_wait: Callable[[str | None], None] = lambda holder: None,
               finished: Callable[[], bool] | None = None) -> Iterator[LockOutcome]:
        """Hold the environment lock inside the block when it yields ``ACQUIRED``; ``BUSY`` and
        ``FINISHED_ELSEWHERE`` say why it was not taken (and nothing is held)."""
        read_only = self.database.read_only_reason()
        if read_only:
            raise DatabaseError(f"cannot record anything: {read_only}")
        outcome = self.lock.acquire(wait, if_busy, on_wait, finished)
        if outcome is not LockOutcome.ACQUIRED:
            yield outcome
            return
        try:
            yield outcome
        finally:
            self.database.rollback()
            self.lock.release()

    def release(self) -> str | None:
        """The release deployed now, as the records keep it (no host or user asked: ``status``
        and the no-op look need only this of the origin)."""
        if self._origin is not None:
            return self._origin.release_id
        return storable(detect_release(self.settings), NAME_LIMIT)

    def origin(self) -> Origin:
        """Who and where: stored with every attempt."""
        if self._origin is None:
            import getpass
            import socket

            from afterparty.version import __version__

            try:
                user = getpass.getuser()
            except (KeyError, OSError):
                user = str(os.getuid())
            self._origin = Origin(
                host=socket.gethostname(), pid=os.getpid(), username=user,
                release_id=self.release(),
                environment=self.settings.environment, tool_version=__version__,
            )
        return self._origin

    def act_as(self, username: str) -> None:
        """Record what this session decides as done by ``username`` (a console's user) instead of
        the operating system's user; host, pid and release stay this process's."""
        self._origin = self.origin()._replace(username=storable(username, NAME_LIMIT) or username)

    def close(self) -> None:
        if self._database is not None:
            if self._lock is not None:
                self._lock.release()
            self._database.close()
            if self._lock is not None:
                self._lock.database_lock.close()
            for lock in self.other_locks:
                lock.close()
            self.other_locks = []
            self._database = self._recorder = self._lock = None
