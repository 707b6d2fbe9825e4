"""The only code that touches the records tables: one row per task, one per attempt, and meta."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

from afterparty.backends.base import Database, MissingTableError
from afterparty.errors import DatabaseError, LockLostError
from afterparty.records import (
    ATTEMPT_COLUMNS,
    LONG_TEXT_LIMIT,
    NAME_LIMIT,
    PROGRESS_COLUMNS,
    SCHEMA_VERSION,
    TABLES,
    TASK_COLUMNS,
    TEXT_LIMIT,
    Attempt,
    Origin,
    Progress,
    Record,
    ascii_only,
    error_summary,
    storable,
)
from afterparty.states import Action, State, state_of

LOCK_EPOCH = "lock_epoch"
P = ParamSpec("P")
T = TypeVar("T")


def keeping_text(write: Callable[Concatenate[Recorder, P], T]) -> Callable[Concatenate[Recorder, P], T]:
    """For a record writer: when a column refuses a character even so (records tables in latin1
    or utf8mb3, made by an afterparty older than the utf8mb4 tables in such a MySQL database; a
    PostgreSQL database in LATIN1), the record is written again with every non-ASCII character
    escaped. A task's outcome is kept readable, never lost with the task left ``running``."""

    @functools.wraps(write)
    def writer(recorder: Recorder, /, *args: P.args, **kwargs: P.kwargs) -> T:
        texts = [a for a in (*args, *kwargs.values()) if isinstance(a, str)]
        if all(text.isascii() for text in texts):
            return write(recorder, *args, **kwargs)
        database = recorder.database
        database.execute("SAVEPOINT afterparty_text")
        try:
            written = write(recorder, *args, **kwargs)
        except (DatabaseError, UnicodeError):  # psycopg encodes for a LATIN1 database itself
            database.execute("ROLLBACK TO SAVEPOINT afterparty_text")
            with ascii_only():
                written = write(recorder, *args, **kwargs)
        database.execute("RELEASE SAVEPOINT afterparty_text")
        return written

    return writer


class Recorder:
    """Reads and writes the records. Writes happen only while holding the lock, and commit
    only while this runner's lock epoch is still the current one (the fence)."""

    def __init__(self, database: Database, prefix: str) -> None:
        self.database = database
        self.prefix = prefix
        self.tasks_table = f"{prefix}tasks"
        self.attempts_table = f"{prefix}attempts"
        self.meta_table = f"{prefix}meta"
        self.progress_table = f"{prefix}progress"
        self.checkpoints_table = f"{prefix}checkpoints"
        self.epoch: int | None = None
        #: The meta row whose epoch fences this recorder's commits: the environment lock's, or
        #: on a worker its task's lease (``lease.fence_key``).
        self.fence = LOCK_EPOCH
        self._environment_id: str | None = None

    # --- reading (no lock needed) -------------------------------------------------------

    def read_states(self) -> dict[str, State]:
        """Version -> state as ``run`` sees it (a recurring task reads pending) of every record,
        in one query; empty before the first run."""
        try:
            rows = self.database.query(f"SELECT version, state, recurring FROM {self.tasks_table}")
        except MissingTableError:
            return {}
        pending, of = State.PENDING, state_of
        return {version: pending if recurring else of(state) for version, state, recurring in rows}

    def read_records(self) -> dict[str, Record]:
        """Every record, in one query; empty before the first run."""
        try:
            rows = self.database.query(f"SELECT {', '.join(TASK_COLUMNS)} FROM {self.tasks_table}")
        except MissingTableError:
            return {}
        return {row[0]: Record(*row) for row in rows}

    def read_attempts(self, version: str) -> list[Attempt]:
        """Every attempt at one task, oldest first."""
        try:
            rows = self.database.query(
                f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM {self.attempts_table} "
                "WHERE version = %s ORDER BY id",
                (version,),
            )
        except MissingTableError:
            return []
        return [Attempt(*row) for row in rows]

    def read_progress(self, version: str | None = None) -> dict[str, Progress]:
        """Checkpoints and progress of long tasks (or of one), in one query."""
        where, params = ("WHERE version = %s", (version,)) if version is not None else ("", ())
        try:
            rows = self.database.query(
                f"SELECT {', '.join(PROGRESS_COLUMNS)} FROM {self.progress_table} {where}", params)
        except MissingTableError:
            return {}
        return {row[0]: Progress(*row) for row in rows}

    def read_checkpoints(self, version: str | None = None) -> dict[str, str]:
        """Version -> checkpoint (JSON text) of long tasks (or of one), in one query."""
        where, params = ("WHERE version = %s", (version,)) if version is not None else ("", ())
        try:
            rows = self.database.query(
                f"SELECT version, checkpoint FROM {self.checkpoints_table} {where}", params)
        except MissingTableError:
            return {}
        return {row[0]: str(row[1]) for row in rows}

    def environment_id(self) -> str:
        """A random identifier made with the tables: this environment's identity (read once)."""
        if self._environment_id is None:
            self._environment_id = self._meta("environment_id")
        return self._environment_id or ""

    def read_lock_holder(self) -> str | None:
        """Who said they hold the lock most recently."""
        try:
            holder = self._meta("lock_holder")
        except MissingTableError:
            return None
        self.database.rollback()
        return holder

    # --- the schema and the fence (holding the lock) ------------------------------------

    def ensure_schema(self) -> None:
        """Create whatever part of the records tables is missing; the schema version is written
        last, so a first run cut short (MySQL commits each CREATE by itself) is healed by the
        next one."""
        try:
            schema = self._meta("schema")
        except MissingTableError:
            schema = None
        if schema is not None and schema.isdigit() and int(schema) >= SCHEMA_VERSION:
            return
        self.create_tables()
        import uuid

        with self.database.transaction():
            for key, value in (("environment_id", uuid.uuid4().hex), ("lock_epoch", "0"),
                               ("schema", str(SCHEMA_VERSION))):
                self._insert_meta_if_missing(key, value)
            # An older schema: its tables were kept, the missing ones were just created.
            self.database.execute(
                f"UPDATE {self.meta_table} SET meta_value = %s WHERE meta_key = 'schema'",
                (str(SCHEMA_VERSION),))

    def create_tables(self) -> None:
        """Create each records table and index that is missing (the meta rows are
        ``ensure_schema``'s); a Django migration runs this too."""
        dialect = self.database.dialect
        types = {"name": "VARCHAR(255)", **dialect.column_types}
        for role, ddl in TABLES.items():
            self.database.execute(ddl.format(t=f"{self.prefix}{role}", **types) + dialect.table_options)
        dialect.ensure_index(self.database, self.attempts_table, f"{self.prefix}attempts_version",
                             "version")

    def drop_tables(self) -> None:
        """Drop the records tables and their whole history (``migrate afterparty zero``)."""
        for table in (self.checkpoints_table, self.progress_table, self.attempts_table,
                      self.tasks_table, self.meta_table):
            self.database.execute(f"DROP TABLE IF EXISTS {table}")

    def begin_epoch(self, holder: str | None, fence: str = LOCK_EPOCH) -> int:
        """Just after taking the lock (or a task's lease: ``fence`` is its meta key, and no
        ``holder`` is kept): a new epoch, so that writes of any earlier holder that lost it
        without knowing can no longer commit; and who holds it, for waiters."""
        # A read transaction left open from before the lock was taken would show, under
        # repeatable read, an epoch that a runner since then has already moved on.
        self.database.rollback()
        with self.database.transaction():
            epoch = self.next_epoch(fence)
            self._environment_id = self._meta("environment_id")
            if holder is not None and not self.database.execute(
                    f"UPDATE {self.meta_table} SET meta_value = %s WHERE meta_key = 'lock_holder'",
                    (holder,)):
                self._insert_meta_if_missing("lock_holder", holder)
        self.epoch, self.fence = epoch, fence
        return epoch

    def next_epoch(self, fence: str) -> int:
        """Inside a transaction: move the epoch kept under ``fence`` on, and return it (a runner
        that takes a dead worker's lease moves it on too, so that worker can commit nothing)."""
        self._insert_meta_if_missing(fence, "0")
        current = int(self._meta(fence) or 0)
        self.database.execute(
            f"UPDATE {self.meta_table} SET meta_value = %s WHERE meta_key = %s",
            (str(current + 1), fence))
        return current + 1

    def commit(self) -> None:
        """Commit the open transaction if this runner's epoch is still the current one;
        otherwise roll it back and raise LockLostError.

        The check is a locking read of the epoch's row (SQLite: the database's one writer): it
        waits for a newer holder's epoch change to commit, and blocks that change until this
        transaction ends, so no writer of an older epoch commits after a newer epoch began.
        """
        if self.epoch is None:
            raise LockLostError("afterparty wrote a record without holding the lock")
        current = self.database.query(
            f"SELECT meta_value FROM {self.meta_table} WHERE meta_key = %s"
            f"{self.database.dialect.locking_read}", (self.fence,))
        if current != [(str(self.epoch),)]:
            self.database.rollback()
            what = "environment lock" if self.fence == LOCK_EPOCH else "task's lease"
            raise LockLostError(
                f"this runner lost the {what} (its database session ended: killed, an "
                "idle timeout, the network) and another runner took it: nothing more was "
                "recorded and the current task's database work was rolled back; see "
                "`afterparty status`")
        self.database.commit()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """A transaction of record writes, committed by ``commit`` (fenced)."""
        self.database.begin()
        try:
            yield
        except BaseException:
            self.database.rollback()
            raise
        self.commit()

    # --- writing (inside a transaction; ``commit`` ends it) -----------------------------

    @keeping_text
    def record_start(self, version: str, name: str, description: str, checksum: str,
                     origin: Origin, now: str, action: Action = Action.RUN,
                     recurring: bool = False) -> int:
        """Record a task as running with a new attempt; returns the attempt's id."""
        changed = self.database.execute(
            f"UPDATE {self.tasks_table} SET name = %s, state = %s, description = %s, "
            "attempts = attempts + 1, checksum = %s, last_started_at = %s, "
            "first_started_at = COALESCE(first_started_at, %s), finished_at = NULL, "
            "recurring = %s, waiting_reason = NULL WHERE version = %s",
            (name, State.RUNNING.value, storable(description, TEXT_LIMIT), checksum, now, now,
             int(recurring), version),
        )
        if not changed:
            self._insert_task(version, name, State.RUNNING, description, checksum, now, attempts=1,
                              recurring=recurring)
        return self._insert_attempt(version, name, action, State.RUNNING, origin, now)

    @keeping_text
    def record_finish(self, attempt_id: int, version: str, state: State, now: str,
                      duration: float, error: str | None, output: str,
                      task_state: State | None = None) -> None:
        """Close an attempt and its task record with the outcome.

        ``task_state`` is the record's state when it differs from the attempt's (a failed
        rollback leaves the task as it was).
        """
        self.database.execute(
            f"UPDATE {self.attempts_table} SET state = %s, finished_at = %s, duration = %s, "
            "error = %s, output = %s WHERE id = %s",
            (state.value, now, duration, storable(error, LONG_TEXT_LIMIT),
             storable(output, LONG_TEXT_LIMIT), attempt_id),
        )
        self.database.execute(
            f"UPDATE {self.tasks_table} SET state = %s, finished_at = %s, last_error = %s "
            "WHERE version = %s",
            ((task_state or state).value, now, storable(error_summary(error), TEXT_LIMIT), version),
        )

    @keeping_text
    def record_waiting(self, version: str, name: str, description: str, reason: str) -> None:
        """Keep why a pending task did not run, for ``status``."""
        reason_text = storable(reason, TEXT_LIMIT)
        changed = self.database.execute(
            f"UPDATE {self.tasks_table} SET waiting_reason = %s WHERE version = %s",
            (reason_text, version),
        )
        if not changed:
            self._insert_task(version, name, State.PENDING, description, None, None, attempts=0,
                              waiting_reason=reason_text)

    @keeping_text
    def record_decision(self, version: str, name: str, description: str, action: Action,
                        state: State, origin: Origin, now: str, note: str | None,
                        checksum: str | None = None) -> int:
        """Record a person's decision (mark-done, skip, forget, resolve, confirm), or a task sent
        to a worker, as an attempt; returns the attempt's id."""
        changed = self.database.execute(
            f"UPDATE {self.tasks_table} SET name = %s, state = %s, "
            "description = COALESCE(%s, description), checksum = COALESCE(%s, checksum), "
            "finished_at = %s, waiting_reason = NULL WHERE version = %s",
            (name, state.value, storable(description, TEXT_LIMIT) or None, checksum, now, version),
        )
        if not changed:
            self._insert_task(version, name, state, description, checksum, None, attempts=0,
                              finished_at=now)
        attempt_id = self._insert_attempt(version, name, action, state, origin, now, note)
        self.database.execute(
            f"UPDATE {self.attempts_table} SET finished_at = %s, duration = 0 WHERE id = %s",
            (now, attempt_id),
        )
        return attempt_id

    def write_checkpoint(self, version: str, checkpoint: str, now: str) -> None:
        """Keep a long task's checkpoint (JSON text), in the open transaction."""
        self._upsert(self.checkpoints_table, version, {"checkpoint": checkpoint, "saved_at": now})

    def write_progress(self, progress: Progress) -> None:
        """Keep a long task's last reported progress."""
        values = progress._asdict()
        del values["version"]
        values["note"] = storable(progress.note, TEXT_LIMIT)
        values["worker"] = storable(progress.worker, NAME_LIMIT)
        self._upsert(self.progress_table, progress.version, values)

    def clear_progress(self, version: str) -> None:
        """``forget``: the task starts again from nothing, its checkpoint too."""
        for table in (self.checkpoints_table, self.progress_table):
            self.database.execute(f"DELETE FROM {table} WHERE version = %s", (version,))

    def _upsert(self, table: str, version: str, values: dict[str, Any]) -> None:
        columns = list(values)
        if not self.database.execute(
                f"UPDATE {table} SET {', '.join(f'{c} = %s' for c in columns)} WHERE version = %s",
                (*values.values(), version)):
            self.database.execute(
                f"INSERT INTO {table} (version, {', '.join(columns)}) "
                f"VALUES (%s{', %s' * len(columns)})", (version, *values.values()))

    def mark_orphans_interrupted(self, now: str, versions: Collection[str]) -> list[str]:
        """Turn the records of ``versions`` left ``running`` by a dead runner (or worker) into
        ``interrupted``; returns those versions."""
        running = State.RUNNING.value
        message = "interrupted: the runner stopped before the task finished (killed or crashed)"
        orphans = []
        for version in versions:
            for table in (self.attempts_table, self.tasks_table):
                error_column = "error" if table == self.attempts_table else "last_error"
                changed = self.database.execute(
                    f"UPDATE {table} SET state = %s, finished_at = %s, {error_column} = %s "
                    "WHERE state = %s AND version = %s",
                    (State.INTERRUPTED.value, now, message, running, version),
                )
            if changed:
                orphans.append(version)
        return orphans

    # --- helpers ----------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        rows = self.database.query(
            f"SELECT meta_value FROM {self.meta_table} WHERE meta_key = %s", (key,))
        return str(rows[0][0]) if rows else None

    def _insert_meta_if_missing(self, key: str, value: str) -> None:
        if self._meta(key) is None:
            self.database.execute(
                f"INSERT INTO {self.meta_table} (meta_key, meta_value) VALUES (%s, %s)",
                (key, storable(value, TEXT_LIMIT)))

    def _insert_task(self, version: str, name: str, state: State, description: str | None,
                     checksum: str | None, started_at: str | None, attempts: int,
                     finished_at: str | None = None, recurring: bool = False,
                     waiting_reason: str | None = None) -> None:
        self.database.execute(
            f"INSERT INTO {self.tasks_table} (version, name, state, description, attempts, "
            "checksum, first_started_at, last_started_at, finished_at, recurring, waiting_reason) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (version, name, state.value, storable(description, TEXT_LIMIT), attempts, checksum,
             started_at, started_at, finished_at, int(recurring), waiting_reason),
        )

    def _insert_attempt(self, version: str, name: str, action: Action, state: State,
                        origin: Origin, now: str, note: str | None = None) -> int:
        values: tuple[Any, ...] = (
            version, name, action.value, state.value, now, storable(origin.host, NAME_LIMIT),
            origin.pid, storable(origin.username, NAME_LIMIT), storable(origin.release_id, NAME_LIMIT),
            storable(origin.environment, NAME_LIMIT), storable(origin.tool_version, NAME_LIMIT),
            storable(note, TEXT_LIMIT),
        )
        return self.database.insert_returning_id(
            f"INSERT INTO {self.attempts_table} (version, name, action, state, started_at, host, "
            "pid, username, release_id, environment, tool_version, note) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            values,
        )
