"""Reads and writes the records: one row per task, one row per attempt (no SQL dialect here)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

from afterparty.backends.base import Backend, MissingTableError

SCHEMA_VERSION = 1

# States of a record. "pending" is also what a task with no record is.
PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
INTERRUPTED, SKIPPED = "interrupted", "skipped"
AWAITING, REVERTED = "awaiting", "reverted"
DONE_STATES = frozenset({SUCCEEDED, SKIPPED})
# Not done, but not for `run` to pick up either: a person has to confirm it.
HUMAN_STATES = frozenset({AWAITING})

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

# Column roles map to each backend's types (Backend.column_types).
TABLES = {
    "meta": """CREATE TABLE {t} (
        meta_key {key} NOT NULL PRIMARY KEY,
        meta_value {text} NOT NULL)""",
    "tasks": """CREATE TABLE {t} (
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
    "attempts": """CREATE TABLE {t} (
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
}


@dataclass
class Record:
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
    def run_state(self) -> str:
        """The state as ``run`` sees it: a recurring task is always pending."""
        return _run_state(self.state, self.recurring)


@dataclass
class Attempt:
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


@dataclass
class Origin:
    """Who and where an attempt comes from; stored with every attempt."""

    host: str
    pid: int
    username: str
    release_id: str | None
    environment: str
    tool_version: str


class Recorder:
    """The only code that touches the records tables."""

    def __init__(self, backend: Backend, prefix: str) -> None:
        self.backend = backend
        self.prefix = prefix
        self.tasks_table = f"{prefix}tasks"
        self.attempts_table = f"{prefix}attempts"
        self.meta_table = f"{prefix}meta"
        self._environment_id: str | None = None

    def read_states(self) -> dict[str, str]:
        """Version -> state of every record, in one query; empty before the first run.

        A recurring task's state reads ``pending``: it always has work for ``run``.
        """
        try:
            rows = self.backend.query(f"SELECT version, state, recurring FROM {self.tasks_table}")
        except MissingTableError:
            return {}
        return {version: _run_state(state, recurring) for version, state, recurring in rows}

    def read_done_versions(self) -> set[str]:
        """The versions whose record is done and not recurring, in one query; empty before the
        first run."""
        marks = ", ".join(["%s"] * len(DONE_STATES))
        try:
            rows = self.backend.query(
                f"SELECT version FROM {self.tasks_table} WHERE state IN ({marks}) AND recurring = 0",
                sorted(DONE_STATES))
        except MissingTableError:
            return set()
        return set(chain.from_iterable(rows))

    def read_records(self) -> dict[str, Record]:
        """Every record, in one query; empty before the first run."""
        try:
            rows = self.backend.query(f"SELECT {', '.join(TASK_COLUMNS)} FROM {self.tasks_table}")
        except MissingTableError:
            return {}
        return {row[0]: Record(*row) for row in rows}

    def read_attempts(self, version: str) -> list[Attempt]:
        """Every attempt at one task, oldest first."""
        try:
            rows = self.backend.query(
                f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM {self.attempts_table} "
                "WHERE version = %s ORDER BY id",
                (version,),
            )
        except MissingTableError:
            return []
        return [Attempt(*row) for row in rows]

    def ensure_schema(self) -> None:
        """Create the records tables if they are missing (call it holding the lock)."""
        try:
            self.backend.query(f"SELECT meta_value FROM {self.meta_table} WHERE meta_key = 'schema'")
            return
        except MissingTableError:
            pass
        types = {"name": "VARCHAR(255)", **self.backend.column_types}
        self.backend.begin()
        for role, ddl in TABLES.items():
            self.backend.execute(ddl.format(t=f"{self.prefix}{role}", **types))
        self.backend.execute(
            f"CREATE INDEX {self.prefix}attempts_version ON {self.attempts_table} (version)"
        )
        import uuid

        for key, value in (("schema", str(SCHEMA_VERSION)), ("environment_id", uuid.uuid4().hex)):
            self.backend.execute(
                f"INSERT INTO {self.meta_table} (meta_key, meta_value) VALUES (%s, %s)",
                (key, value),
            )
        self.backend.commit()

    def environment_id(self) -> str:
        """A random identifier made with the tables: this environment's identity (read once)."""
        if self._environment_id is None:
            rows = self.backend.query(
                f"SELECT meta_value FROM {self.meta_table} WHERE meta_key = 'environment_id'"
            )
            self._environment_id = str(rows[0][0])
        return self._environment_id

    def record_lock_holder(self, identity: str) -> None:
        """Say who holds the lock now, for runners waiting for it (no commit)."""
        changed = self.backend.execute(
            f"UPDATE {self.meta_table} SET meta_value = %s WHERE meta_key = 'lock_holder'", (identity,))
        if not changed:
            self.backend.execute(
                f"INSERT INTO {self.meta_table} (meta_key, meta_value) VALUES ('lock_holder', %s)",
                (identity,))

    def read_lock_holder(self) -> str | None:
        """Who said they hold the lock most recently."""
        try:
            rows = self.backend.query(
                f"SELECT meta_value FROM {self.meta_table} WHERE meta_key = 'lock_holder'")
        except MissingTableError:
            return None
        self.backend.rollback()
        return str(rows[0][0]) if rows else None

    def record_start(self, version: str, name: str, description: str, checksum: str,
                     origin: Origin, now: str, action: str = "run", recurring: bool = False) -> int:
        """Record a task as running with a new attempt; returns the attempt's id (no commit)."""
        changed = self.backend.execute(
            f"UPDATE {self.tasks_table} SET name = %s, state = %s, description = %s, "
            "attempts = attempts + 1, checksum = %s, last_started_at = %s, "
            "first_started_at = COALESCE(first_started_at, %s), finished_at = NULL, "
            "recurring = %s, waiting_reason = NULL WHERE version = %s",
            (name, RUNNING, description, checksum, now, now, int(recurring), version),
        )
        if not changed:
            self._insert_task(version, name, RUNNING, description, checksum, now, attempts=1,
                              recurring=recurring)
        return self._insert_attempt(version, name, action, RUNNING, origin, now)

    def record_finish(self, attempt_id: int, version: str, state: str, now: str,
                      duration: float, error: str | None, output: str,
                      task_state: str | None = None) -> None:
        """Close an attempt and its task record with the outcome (no commit).

        ``task_state`` is the record's state when it differs from the attempt's (a failed
        rollback leaves the task as it was).
        """
        self.backend.execute(
            f"UPDATE {self.attempts_table} SET state = %s, finished_at = %s, duration = %s, "
            "error = %s, output = %s WHERE id = %s",
            (state, now, duration, error, output, attempt_id),
        )
        self.backend.execute(
            f"UPDATE {self.tasks_table} SET state = %s, finished_at = %s, last_error = %s "
            "WHERE version = %s",
            (task_state or state, now, error_summary(error), version),
        )

    def record_waiting(self, version: str, name: str, description: str, reason: str) -> None:
        """Keep why a pending task did not run, for ``status`` (no commit)."""
        changed = self.backend.execute(
            f"UPDATE {self.tasks_table} SET waiting_reason = %s WHERE version = %s",
            (reason, version),
        )
        if not changed:
            self._insert_task(version, name, PENDING, description, None, None, attempts=0,
                              waiting_reason=reason)

    def record_action(self, version: str, name: str, description: str, action: str,
                      state: str, origin: Origin, now: str, note: str | None,
                      checksum: str | None = None) -> None:
        """Record a human decision (mark-done, skip, forget, resolve) as an attempt (no commit)."""
        changed = self.backend.execute(
            f"UPDATE {self.tasks_table} SET name = %s, state = %s, "
            "description = COALESCE(%s, description), checksum = COALESCE(%s, checksum), "
            "finished_at = %s, waiting_reason = NULL WHERE version = %s",
            (name, state, description or None, checksum, now, version),
        )
        if not changed:
            self._insert_task(version, name, state, description, checksum, None, attempts=0,
                              finished_at=now)
        attempt_id = self._insert_attempt(version, name, action, state, origin, now, note)
        self.backend.execute(
            f"UPDATE {self.attempts_table} SET finished_at = %s, duration = 0 WHERE id = %s",
            (now, attempt_id),
        )

    def mark_orphans_interrupted(self, now: str) -> list[str]:
        """Turn records left ``running`` by a dead runner into ``interrupted``; returns versions."""
        rows = self.backend.query(f"SELECT version FROM {self.tasks_table} WHERE state = %s", (RUNNING,))
        orphans = [row[0] for row in rows]
        if not orphans:
            return []
        message = "interrupted: the runner stopped before the task finished (killed or crashed)"
        self.backend.execute(
            f"UPDATE {self.attempts_table} SET state = %s, finished_at = %s, error = %s "
            "WHERE state = %s",
            (INTERRUPTED, now, message, RUNNING),
        )
        self.backend.execute(
            f"UPDATE {self.tasks_table} SET state = %s, finished_at = %s, last_error = %s "
            "WHERE state = %s",
            (INTERRUPTED, now, message, RUNNING),
        )
        return orphans

    def _insert_task(self, version: str, name: str, state: str, description: str | None,
                     checksum: str | None, started_at: str | None, attempts: int,
                     finished_at: str | None = None, recurring: bool = False,
                     waiting_reason: str | None = None) -> None:
        self.backend.execute(
            f"INSERT INTO {self.tasks_table} (version, name, state, description, attempts, "
            "checksum, first_started_at, last_started_at, finished_at, recurring, waiting_reason) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (version, name, state, description, attempts, checksum, started_at, started_at,
             finished_at, int(recurring), waiting_reason),
        )

    def _insert_attempt(self, version: str, name: str, action: str, state: str, origin: Origin,
                        now: str, note: str | None = None) -> int:
        values: tuple[Any, ...] = (
            version, name, action, state, now, origin.host, origin.pid, origin.username,
            origin.release_id, origin.environment, origin.tool_version, note,
        )
        return self.backend.insert_returning_id(
            f"INSERT INTO {self.attempts_table} (version, name, action, state, started_at, host, "
            "pid, username, release_id, environment, tool_version, note) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            values,
        )


def _run_state(state: str, recurring: int) -> str:
    return PENDING if recurring else state


def error_summary(error: str | None) -> str | None:
    """The line of an error that says what went wrong: the last one of a traceback."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    return lines[-1] if lines else None
