"""The only SQL on what the records keep of releases: when each was first deployed here, the
source each task last ran as (and in which release), and the outbox of notices."""

from __future__ import annotations

from collections.abc import Sequence

from afterparty.backends.base import MissingTableError
from afterparty.errors import DatabaseError
from afterparty.records import (
    LONG_TEXT_LIMIT,
    NAME_LIMIT,
    NOTICE_COLUMNS,
    TEXT_LIMIT,
    Notice,
    storable,
)
from afterparty.states import STORED, Action, State, state_of
from afterparty.tuples import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any

    from afterparty.backends.base import Database, Row

# The first column of the rows that are no task in the no-op look's one query: no version is
# empty (versions are 14 digits).
_SIGNAL = ""


class RecordsLook(NamedTuple):
    """What one query tells the no-op path: every record's state as ``run`` sees it, and what
    else may have work (``run`` and ``tick`` look at both)."""

    states: dict[str, State]
    #: Whether this release's deployment is recorded (None: no release id, or old records).
    release_known: bool | None
    #: The earliest due time of the held notices that may be sent (their attempt succeeded).
    first_notice_due: str | None
    #: Tasks that last ran in a release deployed here after this one: version -> that release.
    ran_later: dict[str, str]
    #: ``tick``'s look only: tasks not run yet that a run found waiting -> the reason it kept,
    #: and human steps that await a person -> since when.
    waiting: dict[str, str]
    awaiting_since: dict[str, str]


class Release(NamedTuple):
    """A release this environment has seen."""

    release_id: str
    first_deployed_at: str
    rolled_back_at: str | None


class RanAs(NamedTuple):
    """A task's source as it last ran (a run attempt), and where."""

    version: str
    attempt_id: int
    release_id: str | None
    checksum: str | None
    source: str


class ReleaseRecords:
    """Reads and writes releases, sources and notices. Like the Recorder, a read ends its own
    transaction unless the caller opened one; writes happen in the caller's transaction (a
    task's, or one committed under a fence), except ``record_deployed``, which never
    overwrites anything."""

    def __init__(self, database: Database, prefix: str) -> None:
        self.database = database
        self.releases_table = f"{prefix}releases"
        self.sources_table = f"{prefix}sources"
        self.notices_table = f"{prefix}notices"
        self.tasks_table = f"{prefix}tasks"
        self.attempts_table = f"{prefix}attempts"

    # --- the no-op path's one query ---------------------------------------------------

    def look(self, release: str | None, waits: bool = False) -> RecordsLook | None:
        """Every record's state, with this release's deployment, the held notices and the tasks
        that ran in a later release, in one query (``waits``: with why tasks wait, and since
        when human steps await); None when the records predate them (schema 2) or do not exist
        yet (the caller reads the states alone)."""
        wait = (f"CASE WHEN state = '{State.AWAITING.value}' THEN finished_at WHEN state IN "
                f"('{State.PENDING.value}', '{State.REVERTED.value}') THEN waiting_reason END"
                if waits else "NULL")
        parts = [f"SELECT version, state, recurring, {wait} FROM {self.tasks_table}",
                 f"SELECT '{_SIGNAL}', 'notice', COUNT(*), MIN(n.due_at) FROM {self._sendable()}"]
        params: list[Any] = []
        if release is not None:
            parts.append(f"SELECT '{_SIGNAL}', 'release', COUNT(*), NULL FROM {self.releases_table} "
                         "WHERE release_id = %s AND rolled_back_at IS NULL")
            parts.append(self._ran_later_sql())
            params += [release, release]
        try:
            rows = self._read(" UNION ALL ".join(parts), params)
        except MissingTableError:
            return None
        states: dict[str, State] = {}
        known: bool | None = None
        first_due: str | None = None
        ran_later: dict[str, str] = {}
        waiting: dict[str, str] = {}
        awaiting_since: dict[str, str] = {}
        pending, stored, of, awaiting = State.PENDING, STORED.get, state_of, State.AWAITING.value
        for version, state, number, text in rows:
            if version != _SIGNAL:
                if state == "ran later":
                    ran_later[version] = str(text)
                    continue
                states[version] = pending if number else stored(state) or of(state)
                if text is not None:
                    (awaiting_since if state == awaiting else waiting)[version] = str(text)
            elif state == "notice":
                first_due = str(text) if number else None
            else:
                known = bool(number)
        return RecordsLook(states, known, first_due, ran_later, waiting, awaiting_since)

    def _ran_later_sql(self) -> str:
        return (f"SELECT s.version, 'ran later', 0, s.release_id FROM {self.sources_table} s "
                f"JOIN {self.releases_table} r ON r.release_id = s.release_id "
                f"WHERE r.first_deployed_at > (SELECT first_deployed_at FROM {self.releases_table} "
                "WHERE release_id = %s)")

    def _sendable(self) -> str:
        """``FROM notices n`` joined to the attempt and the task of each, and the condition of
        the held notices that may go out once due: not sent, not dropped, and either made
        without an attempt (a reminder) or held by an attempt that succeeded — a run's only
        while its work stands: the task is still succeeded (not rolled back or made pending
        since) and no later run of it has replaced that work."""
        succeeded, run = State.SUCCEEDED.value, Action.RUN.value
        return (f"{self.notices_table} n LEFT JOIN {self.attempts_table} a ON a.id = n.attempt_id "
                f"LEFT JOIN {self.tasks_table} t ON t.version = n.version WHERE n.sent_at IS NULL "
                "AND n.dropped_at IS NULL AND (n.attempt_id IS NULL OR "
                f"(a.state = '{succeeded}' AND (a.action <> '{run}' OR (t.state = '{succeeded}' "
                f"AND NOT EXISTS (SELECT 1 FROM {self.attempts_table} b WHERE b.version = n.version "
                f"AND b.action = '{run}' AND b.id > n.attempt_id)))))")

    # --- releases -----------------------------------------------------------------------

    def record_deployed(self, release: str, now: str) -> bool:
        """Record that ``release`` is deployed here from ``now`` on, unless it is already (a
        release rolled back and deployed again starts anew). Needs no lock: it only inserts a
        row that is missing or restarts one a rollback ended; a concurrent runner of the same
        release doing the same is no error. False when nothing could be written (a read-only
        database)."""
        release = storable(release, NAME_LIMIT) or release
        try:
            with self.database.transaction():
                if self.database.execute(
                        f"UPDATE {self.releases_table} SET first_deployed_at = %s, rolled_back_at "
                        "= NULL WHERE release_id = %s AND rolled_back_at IS NOT NULL",
                        (now, release)):
                    return True
                if not self.database.query(
                        f"SELECT 1 FROM {self.releases_table} WHERE release_id = %s", (release,)):
                    self.database.execute(
                        f"INSERT INTO {self.releases_table} (release_id, first_deployed_at) "
                        "VALUES (%s, %s)", (release, now))
        except DatabaseError:
            return bool(self.first_deployed(release))
        return True

    def first_deployed(self, release: str) -> str | None:
        """When ``release`` was first deployed here (since its last rollback); None before the
        records have their releases."""
        try:
            rows = self._read(f"SELECT first_deployed_at FROM {self.releases_table} "
                              "WHERE release_id = %s AND rolled_back_at IS NULL", (release,))
        except MissingTableError:
            return None
        return str(rows[0][0]) if rows else None

    def read_releases(self) -> list[Release]:
        """Every release seen here, the first deployed first."""
        try:
            rows = self._read(f"SELECT release_id, first_deployed_at, rolled_back_at FROM "
                              f"{self.releases_table} ORDER BY first_deployed_at")
        except MissingTableError:
            return []
        return [Release(*row) for row in rows]

    def ran_later(self, release: str) -> dict[str, str]:
        """Tasks that last ran in a release deployed here after ``release``: version -> release."""
        try:
            rows = self._read(self._ran_later_sql(), (release,))
        except MissingTableError:
            return {}
        return {str(row[0]): str(row[3]) for row in rows}

    def mark_rolled_back(self, release: str, now: str) -> None:
        """In the open transaction: ``release`` was rolled back; deployed again, it starts anew."""
        self.database.execute(f"UPDATE {self.releases_table} SET rolled_back_at = %s "
                              "WHERE release_id = %s", (now, release))

    # --- sources ----------------------------------------------------------------------

    def keep_source(self, version: str, attempt_id: int, release: str | None,
                    checksum: str | None, source: str) -> None:
        """In the open transaction (the running record's): the task's source as this attempt
        runs it, in ``release``."""
        values = (attempt_id, storable(release, NAME_LIMIT), checksum,
                  storable(source, LONG_TEXT_LIMIT), version)
        insert = (f"INSERT INTO {self.sources_table} (attempt_id, release_id, checksum, source, "
                  "version) VALUES (%s, %s, %s, %s, %s)")
        absent = self.database.dialect.unless_version_exists
        if absent is not None and self.database.execute(insert + absent, values):
            return  # a task's first run (most runs): one statement
        if not self.database.execute(
                f"UPDATE {self.sources_table} SET attempt_id = %s, release_id = %s, checksum = %s, "
                "source = %s WHERE version = %s", values) and absent is None:
            self.database.execute(insert, values)

    def ran_in(self, release: str) -> dict[str, RanAs]:
        """The tasks whose last run was in ``release``."""
        try:
            rows = self._read(f"SELECT version, attempt_id, release_id, checksum, source FROM "
                              f"{self.sources_table} WHERE release_id = %s", (release,))
        except MissingTableError:
            return {}
        return {str(row[0]): RanAs(*row) for row in rows}

    # --- the outbox -------------------------------------------------------------------

    def hold_notice(self, version: str, attempt_id: int | None, release: str | None,
                    purpose: str, recipient: str | None, title: str | None, message: str,
                    kind: str, required: bool, now: str, due_at: str) -> int:
        """In the open transaction: a notice to send once ``due_at`` has come (and its attempt,
        if it has one, succeeded); returns its id."""
        return self.database.insert_returning_id(
            f"INSERT INTO {self.notices_table} (version, attempt_id, release_id, purpose, "
            "recipient, title, message, kind, required, created_at, due_at, tries) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0)",
            (version, attempt_id, storable(release, NAME_LIMIT), purpose,
             storable(recipient, NAME_LIMIT), storable(title, TEXT_LIMIT),
             storable(message, LONG_TEXT_LIMIT), kind, int(required), now, due_at))

    def due_notices(self, now: str, version: str | None = None) -> list[Notice]:
        """The held notices that may be sent now (of one task, or all), oldest first."""
        where, params = " AND n.due_at <= %s", tuple[str, ...]((now,))
        if version is not None:
            where, params = f"{where} AND n.version = %s", (now, version)
        return self._notices(f"{self._sendable()}{where} ORDER BY n.id", params)

    def held_notices(self, release: str | None = None) -> list[Notice]:
        """The notices that may still go out (``_sendable``): waiting for their time, or not
        delivered yet; of one release, or all."""
        where, params = ("", tuple[str, ...]()) if release is None else (
            " AND n.release_id = %s", (release,))
        return self._notices(f"{self._sendable()}{where} ORDER BY n.id", params)

    def _notices(self, source: str, params: tuple[str, ...]) -> list[Notice]:
        columns = ", ".join(f"n.{column}" for column in NOTICE_COLUMNS)
        try:
            rows = self._read(f"SELECT {columns} FROM {source}", params)
        except MissingTableError:
            return []
        return [Notice(*row) for row in rows]

    def mark_sent(self, notice_id: int, now: str, results: str) -> None:
        """In the open transaction: the notice went out (``results``: what each service said)."""
        self.database.execute(
            f"UPDATE {self.notices_table} SET sent_at = %s, tries = tries + 1, results = %s "
            "WHERE id = %s AND sent_at IS NULL", (now, storable(results, LONG_TEXT_LIMIT), notice_id))

    def mark_not_delivered(self, notice_id: int, now: str, results: str, drop: bool) -> None:
        """In the open transaction: no service took the notice; it is tried again later, or
        ``drop``: never (a notice that is not required)."""
        self.database.execute(
            f"UPDATE {self.notices_table} SET tries = tries + 1, results = %s, dropped_at = %s "
            "WHERE id = %s AND sent_at IS NULL",
            (storable(results, LONG_TEXT_LIMIT), now if drop else None, notice_id))

    def drop_notices(self, notice_ids: Sequence[int], now: str) -> None:
        """In the open transaction: these held notices are never to be sent (a rollback)."""
        for notice_id in notice_ids:
            self.database.execute(
                f"UPDATE {self.notices_table} SET dropped_at = %s "
                "WHERE id = %s AND sent_at IS NULL AND dropped_at IS NULL", (now, notice_id))

    def last_reminders(self, versions: Sequence[str]) -> dict[tuple[str, str], str]:
        """(version, purpose) -> when the last reminder or escalation about each was made."""
        if not versions:
            return {}
        try:
            rows = self._read(
                f"SELECT version, purpose, MAX(created_at) FROM {self.notices_table} "
                f"WHERE purpose IN ('reminder', 'escalation') AND version IN "
                f"({', '.join(['%s'] * len(versions))}) GROUP BY version, purpose", tuple(versions))
        except MissingTableError:
            return {}
        return {(str(version), str(purpose)): str(at) for version, purpose, at in rows}

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self.database.query(sql, params)
        finally:
            if not self.database.in_transaction:
                self.database.rollback()
