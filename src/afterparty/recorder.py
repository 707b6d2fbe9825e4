"""The only code that touches the records tables: one row per task, one per attempt, and meta."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Concatenate, NamedTuple, NoReturn, ParamSpec, TypeVar

from afterparty.backends.base import Database, MissingTableError
from afterparty.errors import DatabaseError, LockLostError, StateChanged
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
    Fence,
    Origin,
    Progress,
    Record,
    ascii_only,
    error_summary,
    storable,
)
from afterparty.states import Action, Actor, Guard, MoveRefused, State, allows, state_of

if TYPE_CHECKING:
    from afterparty.backends.base import DatabaseLock, Row

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


def _request_key(version: str) -> str:
    """The meta row of a person's request to a running task: ``R`` and the version in
    hexadecimal, 13 characters, as a task lease's key (fencing.lease_key) is made."""
    return f"R{int(version):012x}"


class Computed(NamedTuple):
    """A column's new value as SQL over its old one (``attempts + 1``), and its value when the
    record is new."""

    sql: str
    params: tuple[Any, ...]
    first: Any


class Recorder:
    """Reads and writes the records. Every read ends its own transaction (unless the caller
    opened one); every write happens in a transaction that commits only while the writer's
    fence (the environment lock's epoch, or a task lease's) is still the current one, and every
    change of a record's state is one compare-and-set move (``move``)."""

    def __init__(self, database: Database, prefix: str) -> None:
        self.database = database
        self.prefix = prefix
        self.tasks_table = f"{prefix}tasks"
        self.attempts_table = f"{prefix}attempts"
        self.meta_table = f"{prefix}meta"
        self.progress_table = f"{prefix}progress"
        self.checkpoints_table = f"{prefix}checkpoints"
        self._environment_id: str | None = None

    # --- reading (no lock needed) -------------------------------------------------------

    def read_states(self) -> dict[str, State]:
        """Version -> state as ``run`` sees it (a recurring task reads pending) of every record,
        in one query; empty before the first run."""
        try:
            rows = self._read(f"SELECT version, state, recurring FROM {self.tasks_table}")
        except MissingTableError:
            return {}
        pending, of = State.PENDING, state_of
        return {version: pending if recurring else of(state) for version, state, recurring in rows}

    def read_stored_states(self) -> dict[str, State]:
        """Version -> state as recorded (a recurring task's last outcome) of every record, in
        one query; empty before the first run."""
        try:
            rows = self._read(f"SELECT version, state FROM {self.tasks_table}")
        except MissingTableError:
            return {}
        return {version: state_of(state) for version, state in rows}

    def read_records(self, versions: Collection[str] | None = None) -> dict[str, Record]:
        """Every record (or those of ``versions``), in one query; empty before the first run."""
        sql, params = f"SELECT {', '.join(TASK_COLUMNS)} FROM {self.tasks_table}", list(versions or ())
        if versions is not None:
            if not params:
                return {}
            sql += f" WHERE version IN ({', '.join(['%s'] * len(params))})"
        try:
            rows = self._read(sql, params)
        except MissingTableError:
            return {}
        return {row[0]: Record(*row) for row in rows}

    def read_attempts(self, version: str) -> list[Attempt]:
        """Every attempt at one task, oldest first."""
        try:
            rows = self._read(
                f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM {self.attempts_table} "
                "WHERE version = %s ORDER BY id",
                (version,),
            )
        except MissingTableError:
            return []
        return [Attempt(*row) for row in rows]

    def read_history(self, limit: int, person: str | None = None,
                     task: str | None = None) -> list[Attempt]:
        """The newest ``limit`` attempts and decisions across tasks, newest first, in one query;
        only one person's (a part of their name, in any case) and one task's (its version or
        name) when given. Without output and error, which a task's history has."""
        where, params = [], []
        if person:
            escaped = "".join(f"!{char}" if char in "!%_" else char for char in person.lower())
            where.append("LOWER(username) LIKE %s ESCAPE '!'")
            params.append(f"%{escaped}%")
        if task:
            where.append("(version = %s OR name = %s)")
            params += [task, task]
        columns = ", ".join("NULL" if column in ("error", "output") else column
                            for column in ATTEMPT_COLUMNS)
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        try:
            rows = self._read(f"SELECT {columns} FROM {self.attempts_table}{condition} "
                              f"ORDER BY id DESC LIMIT {int(limit)}", params)
        except MissingTableError:
            return []
        return [Attempt(*row) for row in rows]

    def read_progress(self, version: str | None = None) -> dict[str, Progress]:
        """Checkpoints and progress of long tasks (or of one), in one query."""
        where, params = ("WHERE version = %s", (version,)) if version is not None else ("", ())
        try:
            rows = self._read(
                f"SELECT {', '.join(PROGRESS_COLUMNS)} FROM {self.progress_table} {where}", params)
        except MissingTableError:
            return {}
        return {row[0]: Progress(*row) for row in rows}

    def read_checkpoints(self, version: str | None = None) -> dict[str, str]:
        """Version -> checkpoint (JSON text) of long tasks (or of one), in one query."""
        where, params = ("WHERE version = %s", (version,)) if version is not None else ("", ())
        try:
            rows = self._read(
                f"SELECT version, checkpoint FROM {self.checkpoints_table} {where}", params)
        except MissingTableError:
            return {}
        return {row[0]: str(row[1]) for row in rows}

    def environment_id(self) -> str:
        """A random identifier made with the tables: this environment's identity (read once)."""
        if self._environment_id is None:
            rows = self._read(f"SELECT meta_value FROM {self.meta_table} WHERE meta_key = %s",
                              ("environment_id",))
            self._environment_id = str(rows[0][0]) if rows else None
        return self._environment_id or ""

    def read_lock_holder(self) -> str | None:
        """Who said they hold the lock most recently."""
        try:
            rows = self._read(f"SELECT meta_value FROM {self.meta_table} WHERE meta_key = %s",
                              ("lock_holder",))
        except MissingTableError:
            return None
        return str(rows[0][0]) if rows else None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """One query; its transaction ends with it unless the caller opened one (so that the
        next read sees what others committed since, even under repeatable read)."""
        try:
            return self.database.query(sql, params)
        finally:
            if not self.database.in_transaction:
                self.database.rollback()

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
        # Which tasks ran in a release: asked on every run (afterparty.release_records).
        dialect.ensure_index(self.database, f"{self.prefix}sources", f"{self.prefix}sources_release",
                             "release_id")

    def drop_tables(self) -> None:
        """Drop the records tables and their whole history (``migrate afterparty zero``)."""
        for table in (f"{self.prefix}notices", f"{self.prefix}sources", f"{self.prefix}releases",
                      self.checkpoints_table, self.progress_table, self.attempts_table,
                      self.tasks_table, self.meta_table):
            self.database.execute(f"DROP TABLE IF EXISTS {table}")

    def take_fence(self, key: str, guard: Guard, lock: DatabaseLock, holder: str | None) -> Fence:
        """Just after taking a lock (the environment lock, or a task's lease: ``key`` is its meta
        row): a new epoch, so that writes of any earlier holder that lost it without knowing can
        no longer commit; and who holds the environment lock (``holder``), for waiters."""
        # A read transaction left open from before the lock was taken would show, under
        # repeatable read, an epoch that a runner since then has already moved on.
        self.database.rollback()
        with self.database.transaction():
            epoch = self._next_epoch(key)
            self._environment_id = self._meta("environment_id")
            if holder is not None and not self.database.execute(
                    f"UPDATE {self.meta_table} SET meta_value = %s WHERE meta_key = 'lock_holder'",
                    (holder,)):
                self._insert_meta_if_missing("lock_holder", holder)
        return Fence(key, epoch, guard, lock, lock.holding())

    def _next_epoch(self, key: str) -> int:
        """Inside a transaction: move the epoch kept under ``key`` on, and return it."""
        self._insert_meta_if_missing(key, "0")
        current = int(self._meta(key) or 0)
        self.database.execute(
            f"UPDATE {self.meta_table} SET meta_value = %s WHERE meta_key = %s",
            (str(current + 1), key))
        return current + 1

    def commit(self, fence: Fence) -> None:
        """Commit the open transaction if ``fence`` is still the current one; otherwise roll it
        back and raise LockLostError.

        The check is a locking read of the epoch's row (SQLite: the database's one writer): it
        waits for a newer holder's epoch change to commit, and blocks that change until this
        transaction ends, so no writer of an older epoch commits after a newer epoch began.
        The lock is asked too whether it still guards this database (an SQLite file replaced
        under its holder would take the commit somewhere nobody looks). An OS lock held without
        a break since the fence was taken (SQLite's) proves the epoch current without the read.
        """
        self._check_fence(fence)
        self.database.commit()

    def commit_with_checkpoint(self, fence: Fence, version: str, checkpoint: str, now: str) -> None:
        """Keep a long task's checkpoint (JSON text) and commit the open transaction, if ``fence``
        is still the current one (``commit``): a batch's bookkeeping in one statement, for the
        checkpoint is written only while the epoch's row, read with ``commit``'s locking read,
        still holds the fence's epoch. No row written: the task's first checkpoint, or a lost
        fence, told apart the long way. Under a lock that proves the epoch current (``commit``:
        SQLite's, held without a break) the checkpoint is written without the epoch's read."""
        update = (f"UPDATE {self.checkpoints_table} SET checkpoint = %s, saved_at = %s "
                  "WHERE version = %s")
        if self._proven(fence):
            written = self.database.execute(update, (checkpoint, now, version))
        else:
            written = self.database.execute(
                f"{update} AND EXISTS (SELECT 1 FROM {self.meta_table} WHERE meta_key = %s AND "
                f"meta_value = %s{self.database.dialect.locking_read})",
                (checkpoint, now, version, fence.key, str(fence.epoch)))
            if written and not fence.lock.guards_commit():
                self._refuse_commit(fence)
        if not written:
            self._check_fence(fence)
            self.write_checkpoint(version, checkpoint, now)
        self.database.commit()

    @staticmethod
    def _proven(fence: Fence) -> bool:
        """Whether ``fence`` is current without a read: its lock (SQLite's file lock) has been
        held without a break since the epoch was taken, on the file the path still names."""
        return fence.holding is not None and fence.lock.holding() == fence.holding

    def _check_fence(self, fence: Fence) -> None:
        """In the open transaction: LockLostError, after rolling it back, unless ``fence`` is
        still the current one (``commit``). A lock held by this process without a break since
        the fence was taken (SQLite's file lock) proves it without a read."""
        if self._proven(fence):
            return
        current = self.database.query(
            f"SELECT meta_value FROM {self.meta_table} WHERE meta_key = %s"
            f"{self.database.dialect.locking_read}", (fence.key,))
        if current != [(str(fence.epoch),)] or not fence.lock.guards_commit():
            self._refuse_commit(fence)

    def _refuse_commit(self, fence: Fence) -> NoReturn:
        """Roll the open transaction back: its writer lost ``fence``."""
        self.database.rollback()
        who = "runner" if fence.guard is Guard.LOCK else "worker"
        raise LockLostError(
            f"this {who} lost the {fence.guard.value} (its database session ended: killed, an "
            "idle timeout, the network) and another runner took it: nothing more was "
            "recorded and the current task's database work was rolled back; see "
            "`afterparty status`")

    @contextmanager
    def writing(self, fence: Fence, synced: bool = True) -> Iterator[None]:
        """A transaction of record writes, committed under ``fence`` (``commit``); ``synced``
        False: the commit may be left for the next synced one to carry to disk
        (``Connection.unsynced_commits``)."""
        with nullcontext() if synced else self.database.connection.unsynced_commits():
            self.database.begin()
            try:
                yield
            except BaseException:
                self.database.rollback()
                raise
            self.commit(fence)

    # --- the one writer of a state ------------------------------------------------------

    def move(self, version: str, expected: State, to: State, fence: Fence, by: Actor,
             **columns: Any) -> bool:
        """Move one record from ``expected`` (the state its writer read) to ``to``, setting
        ``columns`` with it, inside the open fenced transaction: the only code that writes a
        state. MoveRefused when the transition table has no such move for ``by`` under this
        fence; StateChanged, with nothing changed, when the record is no longer ``expected``.
        True when the move made the task's first record (it had none: a pending task)."""
        if not allows(by, expected, to, fence.guard):
            raise MoveRefused(f"the {by.value} may not move task {version} from {expected} to "
                              f"{to} under the {fence.guard.value}")
        values: dict[str, Any] = {"state": to.value, **columns}
        absent = self.database.dialect.unless_version_exists
        if expected is State.PENDING and absent is not None and self._insert_record(
                version, values, absent):
            return True  # no record yet (most pending tasks have none): the move is its first row
        sets: list[str] = []
        params: list[Any] = []
        for column, value in values.items():
            if isinstance(value, Computed):
                sets.append(f"{column} = {value.sql}")
                params.extend(value.params)
            else:
                sets.append(f"{column} = %s")
                params.append(value)
        if self.database.execute(
                f"UPDATE {self.tasks_table} SET {', '.join(sets)} WHERE version = %s AND state = %s",
                (*params, version, expected.value)):
            return False
        found = self._read(f"SELECT state FROM {self.tasks_table} WHERE version = %s", (version,))
        if found or expected is not State.PENDING:
            self._check_fence(fence)  # a newer holder moved it: say that this one lost the lock
            now = state_of(str(found[0][0])) if found else State.PENDING
            raise StateChanged(
                f"task {version} is {now} now, not {expected} as it was read: someone else changed "
                "it meanwhile, and nothing was changed; look at it again (`afterparty status`)")
        self._insert_record(version, values)
        return True

    def _insert_record(self, version: str, values: dict[str, Any], suffix: str = "") -> int:
        """A task's first record, holding ``values`` (a Computed's value for a new record)."""
        first = {"attempts": 0, **{c: v.first if isinstance(v, Computed) else v
                                   for c, v in values.items()}}
        return self.database.execute(
            f"INSERT INTO {self.tasks_table} (version, {', '.join(first)}) "
            f"VALUES (%s{', %s' * len(first)}){suffix}", (version, *first.values()))

    # --- writing (inside a transaction; ``commit`` ends it) -----------------------------

    @keeping_text
    def record_start(self, version: str, name: str, description: str, checksum: str,
                     origin: Origin, now: str, fence: Fence, expected: State,
                     by: Actor = Actor.RUNNER, action: Action = Action.RUN,
                     recurring: bool = False) -> int:
        """Move a task from ``expected`` to running with a new attempt; returns the attempt's id.
        A request left for an earlier attempt (``clear_request``) is dropped; a task's first
        record can have none (a request is only made of a running task, and records stay)."""
        if not self.move(version, expected, State.RUNNING, fence, by, name=name,
                         description=storable(description, TEXT_LIMIT),
                         attempts=Computed("attempts + 1", (), 1), checksum=checksum,
                         last_started_at=now,
                         first_started_at=Computed("COALESCE(first_started_at, %s)", (now,), now),
                         finished_at=None, recurring=int(recurring), waiting_reason=None):
            self.clear_request(version)
        return self._insert_attempt(version, name, action, State.RUNNING, origin, now)

    @keeping_text
    def record_finish(self, attempt_id: int, version: str, state: State, now: str,
                      duration: float, error: str | None, output: str, fence: Fence,
                      by: Actor = Actor.RUNNER, task_state: State | None = None,
                      expected: State = State.RUNNING) -> None:
        """Close an attempt and move its task record from ``expected`` to the outcome.

        ``task_state`` is the record's state when it differs from the attempt's (a failed
        rollback leaves the task as it was).
        """
        self.database.execute(
            f"UPDATE {self.attempts_table} SET state = %s, finished_at = %s, duration = %s, "
            "error = %s, output = %s WHERE id = %s",
            (state.value, now, duration, storable(error, LONG_TEXT_LIMIT),
             storable(output, LONG_TEXT_LIMIT), attempt_id),
        )
        self.move(version, expected, task_state or state, fence, by, finished_at=now,
                  last_error=storable(error_summary(error), TEXT_LIMIT))
        if expected is State.RUNNING:
            self.clear_request(version)

    @keeping_text
    def record_waiting(self, version: str, name: str, description: str, reason: str) -> None:
        """Keep why a pending task did not run, for ``status``."""
        reason_text = storable(reason, TEXT_LIMIT)
        changed = self.database.execute(
            f"UPDATE {self.tasks_table} SET waiting_reason = %s WHERE version = %s",
            (reason_text, version),
        )
        if not changed:  # no record yet: one that says pending, as no record does
            self.database.execute(
                f"INSERT INTO {self.tasks_table} (version, name, state, description, attempts, "
                "waiting_reason) VALUES (%s, %s, %s, %s, 0, %s)",
                (version, name, State.PENDING.value, storable(description, TEXT_LIMIT), reason_text))

    @keeping_text
    def record_decision(self, version: str, name: str, description: str, action: Action,
                        expected: State, state: State, origin: Origin, now: str, note: str | None,
                        fence: Fence, by: Actor = Actor.PERSON, checksum: str | None = None,
                        error: str | None = None) -> int:
        """Record a decision (a person's: mark-done, skip, forget, resolve, confirm; a runner's:
        a task sent to a worker) as a finished attempt and move the task from ``expected`` to
        ``state``; returns the attempt's id."""
        self.move(version, expected, state, fence, by, name=name,
                  description=Computed("COALESCE(%s, description)",
                                       (storable(description, TEXT_LIMIT) or None,),
                                       storable(description, TEXT_LIMIT)),
                  checksum=Computed("COALESCE(%s, checksum)", (checksum,), checksum),
                  finished_at=now, waiting_reason=None,
                  last_error=storable(error_summary(error), TEXT_LIMIT))
        attempt_id = self._insert_attempt(version, name, action, state, origin, now, note)
        self.database.execute(
            f"UPDATE {self.attempts_table} SET finished_at = %s, duration = 0, error = %s "
            "WHERE id = %s", (now, storable(error, LONG_TEXT_LIMIT), attempt_id),
        )
        return attempt_id

    # --- a person's request to a running task ------------------------------------------

    def ask(self, version: str, name: str, action: Action, origin: Origin, now: str,
            note: str | None) -> bool:
        """Ask the running task ``version`` to stop at its next batch or progress report
        (``pause``, ``cancel``): kept in the meta row of its request, with the asking as a
        decision in its history. A request writes no state (the task's runner moves it, under
        its own fence) and takes no lock, so it is made while a deploy holds the environment
        lock. False, with nothing written, when the task is not running (any more)."""
        with self.database.transaction():
            found = self._read(f"SELECT state FROM {self.tasks_table} WHERE version = %s",
                               (version,))
            running = bool(found) and state_of(str(found[0][0])) is State.RUNNING
            if running:
                self._keep_request(version, name, action, origin, now, note)
        return running

    def _keep_request(self, version: str, name: str, action: Action, origin: Origin, now: str,
                      note: str | None) -> None:
        """In the open transaction: the request's meta row, and the asking in the history."""
        key = _request_key(version)
        if not self.database.execute(
                f"UPDATE {self.meta_table} SET meta_value = %s WHERE meta_key = %s",
                (action.value, key)):
            self._insert_meta_if_missing(key, action.value)
        attempt_id = self._insert_attempt(version, name, action, State.RUNNING, origin, now, note)
        self.database.execute(
            f"UPDATE {self.attempts_table} SET finished_at = %s, duration = 0 WHERE id = %s",
            (now, attempt_id))

    def read_request(self, version: str) -> Action | None:
        """What a person asked of the running task ``version``, if anything."""
        rows = self._read(f"SELECT meta_value FROM {self.meta_table} WHERE meta_key = %s",
                          (_request_key(version),))
        return Action(str(rows[0][0])) if rows else None

    def clear_request(self, version: str) -> None:
        """In the transaction that ends an attempt (or starts one): the request was honoured,
        or came too late for the attempt it was meant for."""
        self.database.execute(f"DELETE FROM {self.meta_table} WHERE meta_key = %s",
                              (_request_key(version),))

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

    def mark_orphans_interrupted(self, now: str, versions: Collection[str], fence: Fence,
                                 by: Actor = Actor.RUNNER) -> list[str]:
        """Move the records of ``versions`` left ``running`` by a dead runner (or worker) to
        ``interrupted``, with their open attempts; returns those still running when asked."""
        message = "interrupted: its runner or worker stopped before the task finished (killed or crashed)"
        orphans = []
        for version in versions:
            try:
                self.move(version, State.RUNNING, State.INTERRUPTED, fence, by, finished_at=now,
                          last_error=message)
            except StateChanged:
                continue
            self.database.execute(
                f"UPDATE {self.attempts_table} SET state = %s, finished_at = %s, error = %s "
                "WHERE state = %s AND version = %s",
                (State.INTERRUPTED.value, now, message, State.RUNNING.value, version))
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
