"""One environment's records: its database connection, recorder, lock and who is acting."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from afterparty.backends import parse_url
from afterparty.backends.base import Backend, holder_identity
from afterparty.config import Settings, detect_release
from afterparty.errors import DatabaseError
from afterparty.lock import ACQUIRED, acquire_lock
from afterparty.recorder import Origin, Recorder


def utc_now() -> str:
    """The current time as stored in records: ISO 8601, UTC, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Environment:
    """Opens the tracking database lazily, so commands that need no records never connect."""

    def __init__(self, settings: Settings, connect_timeout: float = 30.0,
                 backend: Backend | None = None) -> None:
        """``backend``, when given, is a connected one (a framework's database connection)."""
        self.settings = settings
        self.url = backend.url if backend is not None else parse_url(settings.database_url)
        self.connect_timeout = connect_timeout
        self._backend: Backend | None = backend
        self._recorder: Recorder | None = None
        self._origin: Origin | None = None

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from afterparty.backends import open_backend

            self._backend = open_backend(self.url, self.connect_timeout)
        return self._backend

    @property
    def recorder(self) -> Recorder:
        if self._recorder is None:
            self._recorder = Recorder(self.backend, self.settings.table_prefix)
        return self._recorder

    @contextmanager
    def locked(self, wait: float = 300.0, if_busy: str = "wait",
               on_wait: Callable[[str | None], None] = lambda holder: None,
               finished: Callable[[], bool] | None = None) -> Iterator[str]:
        """Hold the environment lock: yields lock.ACQUIRED, or lock.BUSY when busy and told to
        skip, or lock.FINISHED_ELSEWHERE when ``finished`` said so while waiting."""
        prefix = self.settings.table_prefix
        read_only = self.backend.read_only_reason()
        if read_only:
            raise DatabaseError(f"cannot record anything: {read_only}")
        outcome = acquire_lock(self.backend, prefix, wait, if_busy, self._describe_holder, on_wait,
                               finished)
        if outcome != ACQUIRED:
            yield outcome
            return
        try:
            recorder = self.recorder
            recorder.ensure_schema()
            self.backend.begin()
            recorder.record_lock_holder(holder_identity())
            self.backend.commit()
            yield outcome
        finally:
            self.backend.rollback()
            self.backend.release_lock()

    def _describe_holder(self) -> str | None:
        """The backend's view of the holder, with the identity it wrote when it took the lock."""
        live = self.backend.lock_holder(self.settings.table_prefix)
        if live and "pid" in live:
            return live
        stored = self.recorder.read_lock_holder()
        if stored and live:
            return f"{stored}; {live}"
        return stored or live

    def origin(self) -> Origin:
        """Who and where: stored with every attempt."""
        if self._origin is None:
            import getpass
            import socket

            from afterparty import __version__

            try:
                user = getpass.getuser()
            except (KeyError, OSError):
                user = str(os.getuid())
            self._origin = Origin(
                host=socket.gethostname(), pid=os.getpid(), username=user,
                release_id=detect_release(self.settings),
                environment=self.settings.environment, tool_version=__version__,
            )
        return self._origin

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
            self._recorder = None
