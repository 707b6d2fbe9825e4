"""What the records hold: their tables and rows, and the text a column can keep."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone  # every driver imports datetime: it costs nothing here

from afterparty.states import Guard, State, run_state
from afterparty.tuples import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any

    from afterparty.backends.base import DatabaseLock

# 2: the progress table (checkpoints and progress of long tasks).
# 3: the releases each environment has seen, the source each task last ran as, and the outbox of
#    notices held with a task's work (afterparty.release_records writes them).
SCHEMA_VERSION = 3

TASK_COLUMNS = (
    "version", "name", "state", "description", "attempts", "checksum",
    "first_started_at", "last_started_at", "finished_at", "last_error", "recurring",
    "waiting_reason",
)
ATTEMPT_COLUMNS = (
    "id", "version", "name", "action", "state", "started_at", "finished_at", "duration",
    "host", "pid", "username", "release_id", "environment", "error", "output",
    "tool_version", "note",
)

# Column roles map to each dialect's types (Dialect.column_types).
TABLES = {
    "meta": """CREATE TABLE IF NOT EXISTS {t} (
        meta_key {key} NOT NULL PRIMARY KEY,
        meta_value {text} NOT NULL)""",
    "tasks": """CREATE TABLE IF NOT EXISTS {t} (
        version {key} NOT NULL PRIMARY KEY,
        name {name} NOT NULL,
        state {name} NOT NULL,
        description {text},
        attempts {integer} NOT NULL,
        checksum {name},
        first_started_at {name},
        last_started_at {name},
        finished_at {name},
        last_error {long_text},
        recurring {integer} NOT NULL DEFAULT 0,
        waiting_reason {text})""",
    "attempts": """CREATE TABLE IF NOT EXISTS {t} (
        id {id},
        version {key} NOT NULL,
        name {name} NOT NULL,
        action {name} NOT NULL,
        state {name} NOT NULL,
        started_at {name} NOT NULL,
        finished_at {name},
        duration {real},
        host {name},
        pid {integer},
        username {name},
        release_id {name},
        environment {name},
        error {long_text},
        output {long_text},
        tool_version {name},
        note {text})""",
    # Long tasks: the checkpoint commits with a batch's work in the task's transaction, while
    # progress is written from a second session during it, so each has a table (no row lock of
    # the task's open transaction ever stands in the way of a progress report).
    "checkpoints": """CREATE TABLE IF NOT EXISTS {t} (
        version {key} NOT NULL PRIMARY KEY,
        checkpoint {long_text} NOT NULL,
        saved_at {name})""",
    "progress": """CREATE TABLE IF NOT EXISTS {t} (
        version {key} NOT NULL PRIMARY KEY,
        done {real},
        total {real},
        note {text},
        rate_since {name},
        rate_from {real},
        updated_at {name},
        worker {name})""",
    # What the records keep of releases (afterparty.release_records): when each was first
    # deployed here, the source of each task as it last ran and in which release, and the
    # notices held with a task's work until it commits (and, with ``after=``, until the release
    # has been live long enough).
    "releases": """CREATE TABLE IF NOT EXISTS {t} (
        release_id {name} NOT NULL PRIMARY KEY,
        first_deployed_at {name} NOT NULL,
        rolled_back_at {name})""",
    "sources": """CREATE TABLE IF NOT EXISTS {t} (
        version {key} NOT NULL PRIMARY KEY,
        attempt_id {integer} NOT NULL,
        release_id {name},
        checksum {name},
        source {long_text} NOT NULL)""",
    "notices": """CREATE TABLE IF NOT EXISTS {t} (
        id {id},
        version {key} NOT NULL,
        attempt_id {integer},
        release_id {name},
        purpose {name} NOT NULL,
        recipient {name},
        title {text},
        message {long_text} NOT NULL,
        kind {name} NOT NULL,
        required {integer} NOT NULL,
        created_at {name} NOT NULL,
        due_at {name} NOT NULL,
        tries {integer} NOT NULL DEFAULT 0,
        sent_at {name},
        dropped_at {name},
        results {long_text})""",
}
PROGRESS_COLUMNS = ("version", "done", "total", "note", "rate_since", "rate_from",
                    "updated_at", "worker")
# The longest text each kind of column takes, in characters, on every database: VARCHAR(255),
# MySQL's TEXT (64 KiB of bytes, 4 bytes a character at most) and captured output's cap.
NAME_LIMIT = 255
TEXT_LIMIT = 16_000
LONG_TEXT_LIMIT = 65 * 1024  # captured output is cut at 64 KiB, with a note after it
CUT = "\n[cut: too long to keep]"


def utc_now() -> str:
    """The current time as stored in records: ISO 8601, UTC, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


_ASCII_ONLY: ContextVar[bool] = ContextVar("afterparty_ascii_only", default=False)


def storable(text: str | None, limit: int) -> str | None:
    """Text any database can keep: NUL bytes and lone surrogates (a task printing odd bytes)
    written as escapes (in ``keeping_text``'s second try, every non-ASCII character), and at
    most ``limit`` characters."""
    if text is None:
        return None
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        encoding = "ascii" if _ASCII_ONLY.get() else "utf-8"
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    if len(text) > limit:
        text = text[:limit - len(CUT)] + CUT
    return text


@contextmanager
def ascii_only() -> Iterator[None]:
    """Inside: ``storable`` escapes every non-ASCII character too (a column that refuses it)."""
    token = _ASCII_ONLY.set(True)
    try:
        yield
    finally:
        _ASCII_ONLY.reset(token)



class Record(NamedTuple):
    """The database's memory of one task."""

    version: str
    name: str
    state: str
    description: str | None
    attempts: int
    checksum: str | None
    first_started_at: str | None
    last_started_at: str | None
    finished_at: str | None
    last_error: str | None
    recurring: int = 0
    waiting_reason: str | None = None

    @property
    def run_state(self) -> State:
        """The state as ``run`` sees it: a recurring task is always pending."""
        return run_state(self.state, self.recurring)


class Attempt(NamedTuple):
    """One try at a task, or one human action on it (mark-done, skip, forget, resolve)."""

    id: int
    version: str
    name: str
    action: str
    state: str
    started_at: str
    finished_at: str | None
    duration: float | None
    host: str | None
    pid: int | None
    username: str | None
    release_id: str | None
    environment: str | None
    error: str | None
    output: str | None
    tool_version: str | None
    note: str | None


class Progress(NamedTuple):
    """How far a long task got, as it last reported it (``ctx.progress``)."""

    version: str
    done: float | None = None
    total: float | None = None
    note: str | None = None
    #: The time of the attempt's first report, and ``done`` then: the rate is measured from them.
    rate_since: str | None = None
    rate_from: float | None = None
    updated_at: str | None = None
    #: Who reported it: the host and pid of the runner (or worker) running the task.
    worker: str | None = None

    @property
    def percent(self) -> float | None:
        if self.done is None or not self.total:
            return None
        return min(100.0, 100.0 * self.done / self.total)

    @property
    def rate(self) -> float | None:
        """Units a second since the attempt's first report; None before there are two."""
        from datetime import datetime

        if None in (self.done, self.rate_from, self.rate_since, self.updated_at):
            return None
        seconds = (datetime.fromisoformat(str(self.updated_at))
                   - datetime.fromisoformat(str(self.rate_since))).total_seconds()
        if seconds <= 0:
            return None
        return (float(self.done or 0) - float(self.rate_from or 0)) / seconds

    def shown(self) -> dict[str, Any]:
        """The report as ``status --json``, ``show``, the console and the live line show it:
        with its percent, rate and time left."""
        return {"done": self.done, "total": self.total, "note": self.note,
                "percent": self.percent, "rate": self.rate, "seconds_left": self.seconds_left,
                "updated_at": self.updated_at, "worker": self.worker}

    @property
    def seconds_left(self) -> float | None:
        """The estimated time to ``total`` at the current rate."""
        rate = self.rate
        if not rate or rate <= 0 or self.total is None or self.done is None:
            return None
        return max(0.0, (self.total - self.done) / rate)


class Origin(NamedTuple):
    """Who and where an attempt comes from; stored with every attempt."""

    host: str
    pid: int
    username: str
    release_id: str | None
    environment: str
    tool_version: str


def error_summary(error: str | None) -> str | None:
    """The line of an error that says what went wrong: the last one of a traceback."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    return lines[-1] if lines else None


class Notice(NamedTuple):
    """A notice in the outbox: held with a task's attempt (``ctx.notify``) or made by ``tick``
    (a reminder), sent once it is due and its attempt succeeded."""

    id: int
    version: str
    attempt_id: int | None
    release_id: str | None
    #: ``task`` (ctx.notify), ``reminder`` or ``escalation`` (a human step that waits).
    purpose: str
    #: Whom it goes to: None for the ``notify`` setting, else a name of ``notify.owners``.
    recipient: str | None
    title: str | None
    message: str
    kind: str
    required: int
    created_at: str
    due_at: str
    tries: int
    sent_at: str | None
    dropped_at: str | None
    #: What each notification service said, as JSON (a list of {"service", "url", "ok"}).
    results: str | None


NOTICE_COLUMNS = Notice._fields


class Fence:
    """What a holder's writes are guarded by (afterparty.fencing takes and gives it): the meta
    row ``key`` must still hold ``epoch`` when they commit (``Recorder.commit``), and ``lock``
    must still guard the same database. (Not a dataclass: this module is on the no-op path,
    and dataclasses costs it more than the rest of the module.)"""

    __slots__ = ("epoch", "guard", "holding", "key", "lock")

    def __init__(self, key: str, epoch: int, guard: Guard, lock: DatabaseLock,
                 holding: int | None = None) -> None:
        self.key, self.epoch, self.guard, self.lock = key, epoch, guard, lock
        #: Which holding of ``lock`` took the epoch, when the lock can tell
        #: (``DatabaseLock.holding``).
        self.holding = holding

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fence) and (self.key, self.epoch, self.guard) == (
            other.key, other.epoch, other.guard)

    def __hash__(self) -> int:
        return hash((self.key, self.epoch, self.guard))

    def __repr__(self) -> str:
        return f"Fence(key={self.key!r}, epoch={self.epoch!r}, guard={self.guard!r})"
