"""The fence, one protocol for the environment lock and for each task's lease: a database lock
that the server (or the OS) frees when its holder dies, and an epoch moved on each time it is
taken, so that a holder who lost it without knowing can commit nothing more."""

from __future__ import annotations

from typing import TYPE_CHECKING

from afterparty.errors import LockLostError
from afterparty.states import Guard

if TYPE_CHECKING:
    from afterparty.backends.base import DatabaseLock
    from afterparty.recorder import Recorder
    from afterparty.records import Fence

#: The meta row holding the environment lock's epoch (a task's lease has its own: lease_key).
LOCK_KEY = "lock_epoch"


def lease_key(version: str) -> str:
    """The meta row holding a task's lease epoch. Meta keys hold 14 characters, as a version
    does: ``L`` and the version in hexadecimal (12 digits) keep it one-to-one."""
    return f"L{int(version):012x}"


class FencedLock:
    """A database lock with its epoch: taken without waiting (a new epoch begins), checked
    before each task, and given back. ``fence`` is what the holder passes to its writes."""

    def __init__(self, database_lock: DatabaseLock, recorder: Recorder, key: str,
                 guard: Guard) -> None:
        self.database_lock = database_lock
        self.recorder = recorder
        self.key = key
        self.guard = guard
        self._fence: Fence | None = None

    def try_take(self, holder: str | None = None) -> bool:
        """Take the lock without waiting; once taken, the records' schema exists and a new epoch
        fences every earlier holder. False when someone else holds it."""
        if not self.database_lock.try_acquire():
            return False
        self._begin_epoch(holder)
        return True

    def _begin_epoch(self, holder: str | None) -> None:
        try:
            self.recorder.ensure_schema()
            self._fence = self.recorder.take_fence(self.key, self.guard, self.database_lock, holder)
        except BaseException:
            self.release()
            raise

    @property
    def fence(self) -> Fence:
        """The fence of this holding; LockLostError when the lock is not held."""
        if self._fence is None:
            raise LockLostError(f"afterparty wrote a record without holding the {self.guard.value}")
        return self._fence

    def check(self) -> None:
        """Before each task: is the lock still ours? LockLostError if its session is gone."""
        if self._fence is None or not self.database_lock.is_held():
            raise LockLostError(self.lost_message())

    def lost_message(self) -> str:
        """What a holder that lost the lock says (the environment lock says it its own way)."""
        return (f"this worker lost the {self.guard.value} (its database session ended: killed, "
                "an idle timeout, the network): it stopped before running it")

    def release(self) -> None:
        self._fence = None
        self.database_lock.release()
