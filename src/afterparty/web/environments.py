"""What the console shows of each environment: its status rows, in the order a person reads
them, or why they could not be read. Reads only through report and session, as ``status`` does."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from afterparty.backends.url import redact
from afterparty.errors import AfterpartyError
from afterparty.records import Attempt
from afterparty.report import TaskStatus, read_listing, status_rows, task_history
from afterparty.states import State, state_of
from afterparty.web.config import WebConfig

log = logging.getLogger("afterparty.web")

# The states of a task under way, first of all on the overview, and those a person must act
# on, next, in the order it lists them.
UNDER_WAY = (State.RUNNING, State.QUEUED)
NEEDS_A_PERSON = (State.AWAITING, State.PAUSED, State.INTERRUPTED, State.FAILED, State.CANCELLED)
# How many of the other tasks the overview lists (the newest: a long history is thousands of
# tasks done, which only the matrix lists in full); those under way or needing a person, all.
OVERVIEW_OTHERS = 50


@dataclass
class EnvironmentStatus:
    """One environment's rows, or the error that kept them from being read."""

    name: str
    database: str
    rows: list[TaskStatus] = field(default_factory=list)
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    no_records_yet: bool = False
    #: The rows are from an earlier read: this one has not answered within the deadline.
    late: str | None = None
    #: How many tasks are in each state, every task counted (the overview's rows are only some).
    counted: dict[str, int] = field(default_factory=dict)
    #: How many older tasks the overview leaves out of its rows (OVERVIEW_OTHERS).
    older: int = 0

    @property
    def counts(self) -> list[tuple[str, int]]:
        """How many tasks are in each state: those under way first, then those needing a person."""
        order = [state.value for state in (*UNDER_WAY, *NEEDS_A_PERSON, State.PENDING,
                                            State.SUCCEEDED, State.SKIPPED, State.REVERTED)]
        order += sorted(set(self.counted) - set(order))
        return [(state, self.counted[state]) for state in order if self.counted.get(state)]

    @property
    def under_way(self) -> list[TaskStatus]:
        """Running tasks (their runner or worker gone, too), then those sent to a worker."""
        return self._in(UNDER_WAY)

    @property
    def needing_a_person(self) -> list[TaskStatus]:
        return self._in(NEEDS_A_PERSON)

    @property
    def the_rest(self) -> list[TaskStatus]:
        shown = {state.value for state in (*UNDER_WAY, *NEEDS_A_PERSON)}
        return [row for row in self.rows if row.state not in shown]

    @property
    def moving(self) -> bool:
        """Whether a task here is under way and its runner or worker is still there: a page
        showing it follows it."""
        return any(row.state in {s.value for s in UNDER_WAY} and not row.gone for row in self.rows)

    def _in(self, states: tuple[State, ...]) -> list[TaskStatus]:
        rank = {state.value: i for i, state in enumerate(states)}
        return sorted((row for row in self.rows if row.state in rank),
                      key=lambda row: (rank[row.state], row.version))


def read_environment(config: WebConfig, name: str, overview: bool = False) -> EnvironmentStatus:
    """Every task of one environment (with ``overview``, the rows of those the overview lists
    only, and every task counted); an unreachable database becomes the error to show. A
    refused connection is tried again for half the page's deadline only: then the page says why."""
    try:
        session = config.open_session(name, min(config.connect_timeout, config.deadline / 2))
    except AfterpartyError as exc:  # a URL that does not parse, a framework's database down
        return EnvironmentStatus(name, config.database_of(name), error=redact(str(exc)))
    status = EnvironmentStatus(name, session.url.redacted)
    try:
        listing = read_listing(session, status.problems, records=not overview)
        versions = listing.versions()
        states = [listing.state(version) for version in versions]
        status.counted = {state.value: count for state, count in Counter(states).items()}
        if overview:
            versions, status.older = overview_versions(versions, states)
        status.rows = [without_secrets(row) for row in status_rows(session, listing, versions)]
        status.no_records_yet = session.missing_database_file is not None
    except AfterpartyError as exc:
        status.error = redact(str(exc))
    except Exception as exc:  # a driver's error no backend expected: shown, never a crashed page
        log.exception("reading environment %s failed", name)
        status.error = redact(f"{type(exc).__name__}: {exc}")
    finally:
        session.close()
    return status


def overview_versions(versions: list[str], states: list[State]) -> tuple[list[str], int]:
    """The tasks the overview lists, in version order (``states``: theirs): every one under way
    or needing a person, and the newest OVERVIEW_OTHERS of the others; and how many others it
    leaves out."""
    listed = {*UNDER_WAY, *NEEDS_A_PERSON}
    others = [version for version, state in zip(versions, states, strict=True) if state not in listed]
    newest = set(others[-OVERVIEW_OTHERS:])
    return ([version for version, state in zip(versions, states, strict=True)
             if state in listed or version in newest], len(others) - len(newest))


def overview_rows(status: EnvironmentStatus) -> EnvironmentStatus:
    """An environment as the overview lists it, from a read of every row too (a page that
    joined the read of another page, the matrix's or the API's)."""
    versions, older = overview_versions([row.version for row in status.rows],
                                        [state_of(row.state) for row in status.rows])
    if not older:
        return status
    listed = set(versions)
    return replace(status, rows=[row for row in status.rows if row.version in listed],
                   older=status.older + older)


def read_task(config: WebConfig, name: str, version: str) -> tuple[TaskStatus, list[Attempt]]:
    """One task's row and its history (what ``show`` prints); AfterpartyError as ``show``."""
    session = config.open_session(name)
    try:
        row, attempts = task_history(session, version, [])
    finally:
        session.close()
    return without_secrets(row), [attempt_without_secrets(attempt) for attempt in attempts]


def read_history(config: WebConfig, name: str, limit: int, person: str | None,
                 task: str | None) -> list[Attempt]:
    """One environment's newest attempts and decisions (Recorder.read_history), passwords hidden."""
    session = config.open_session(name, min(config.connect_timeout, config.deadline / 2))
    try:
        if session.missing_database_file is not None:
            return []
        return [attempt_without_secrets(attempt)
                for attempt in session.recorder.read_history(limit, person, task)]
    finally:
        session.close()


# The fields of a status row that may hold any text (a task's, a person's, a directory's); the
# others hold what afterparty writes: a version, a task name, a state, times, counts and flags.
_ANY_TEXT = ("description", "last_error", "path", "reason", "progress", "checkpoint")


def without_secrets(row: TaskStatus) -> TaskStatus:
    """A status row with every password hidden in every text it holds (description, error,
    reason, progress note, checkpoint), as the command line hides them in what it prints: the
    console shows task output to people who may never see a password, read-only users too.
    The row itself when it holds none (ten thousand rows are not copied)."""
    hiding = {}
    for name in _ANY_TEXT:
        value = getattr(row, name)
        shown = hidden(value)
        if shown != value:
            hiding[name] = shown
    return replace(row, **hiding) if hiding else row


def attempt_without_secrets(attempt: Attempt) -> Attempt:
    """An attempt with every password hidden in its output, error, note and other texts."""
    return attempt._replace(**{name: hidden(getattr(attempt, name)) for name in attempt._fields})


def hidden(value: Any) -> Any:
    """``value`` with backends.url.redact applied to every text in it, however deep (a
    checkpoint is any JSON value)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {hidden(key): hidden(item) for key, item in value.items()}
    if isinstance(value, list):
        return [hidden(item) for item in value]
    return value


def matrix(environments: list[EnvironmentStatus]) -> list[tuple[str, str, list[TaskStatus | None]]]:
    """Task x environment: each task's version, name and its row in each environment (None:
    the environment could not be read)."""
    names: dict[str, str] = {}
    for environment in environments:
        for row in environment.rows:
            names.setdefault(row.version, row.name)
    by_version = [{row.version: row for row in env.rows} if env.error is None else {}
                  for env in environments]  # a look-up per cell: ten thousand rows are no scan
    return [(version, names[version], [rows.get(version) for rows in by_version])
            for version in sorted(names)]


@dataclass
class ReleaseView:
    """One release an environment has seen, as its page shows it."""

    release_id: str
    first_deployed_at: str
    rolled_back_at: str | None
    #: The tasks whose last run was in this release, newest first: version, name, state now.
    tasks: list[tuple[str, str, str]]
    #: Its notices that may still go out (waiting for their time, or not delivered yet).
    held: list[str]


def read_releases(config: WebConfig, name: str) -> list[ReleaseView]:
    """Every release an environment has seen, the newest first, with the tasks that ran in each
    and its held notices; passwords hidden."""
    from afterparty.releases import release_records

    session = config.open_session(name)
    try:
        if session.missing_database_file is not None:
            return []
        keeper = release_records(session)
        records = session.recorder.read_records()
        views = []
        for release in reversed(keeper.read_releases()):
            ran = sorted(keeper.ran_in(release.release_id), reverse=True)
            tasks = [(version, records[version].name if version in records else "",
                      records[version].state if version in records else State.PENDING.value)
                     for version in ran]
            held = [redact(notice.title or notice.message.strip().split("\n")[0])
                    for notice in keeper.held_notices(release.release_id)]
            views.append(ReleaseView(release.release_id, release.first_deployed_at,
                                     release.rolled_back_at, tasks, held))
        return views
    finally:
        session.close()


def release_plan(config: WebConfig, name: str, release: str) -> list[str]:
    """What ``rollback --release`` would do there now (its dry run), a line a step."""
    from afterparty.release_rollback import rollback_release
    from afterparty.results import SilentReporter

    session = config.open_session(name)
    try:
        plan = rollback_release(session, SilentReporter(), release, dry_run=True)
        command = session.settings.command
        return ([redact(step.plan_line(command)) for step in plan.steps]
                + [f"would drop the held notice of {notice.version}: "
                   f"{redact(notice.title or notice.message.strip().split(chr(10))[0])}"
                   for notice in plan.dropped]
                + [f"would never run {version} for this release (it waited to stay live)"
                   for version in plan.never_ran])
    finally:
        session.close()
