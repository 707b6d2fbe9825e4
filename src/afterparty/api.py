"""afterparty's commands as Python functions, for deploys driven from Python.

Each function takes the command line's global options as keywords (``database``,
``tasks_dir``, ``env``, ``table_prefix``, ``connect_timeout``; unset ones come from the
environment variables and ``pyproject.toml`` as for the command line) and returns what the
command's ``--json`` prints, as typed values. Errors are raised as the command line's
named exceptions (``afterparty.errors``), each carrying its ``exit_code``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypedDict

from afterparty.config import Settings, load_settings
from afterparty.session import Session

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from typing_extensions import Unpack

    from afterparty.decisions import Decision
    from afterparty.loader import TaskFile
    from afterparty.release_rollback import ReleaseRollback
    from afterparty.report import RunReport, StatusReport, TaskHistory
    from afterparty.results import RunReporter, TaskOutcome
    from afterparty.tick import TickResult

log = logging.getLogger("afterparty")


class Where(TypedDict, total=False):
    """Which environment a function acts on; the command line's global options."""

    database: str | Engine
    """A database URL, or a SQLAlchemy ``Engine`` (then ``ctx.session`` works in tasks)."""
    tasks_dir: str | os.PathLike[str]
    env: str
    table_prefix: str
    connect_timeout: float


def run(*tasks: str, dry_run: bool = False, keep_going: bool = False, wait: float = 300.0,
        if_busy: str = "wait", group: str | None = None, reporter: RunReporter | None = None,
        **where: Unpack[Where]) -> RunReport:
    """Run pending tasks (or only ``tasks``, by version or name) in version order.

    A failed task does not raise: look at ``report.exit_code`` and ``report.tasks``.
    ``reporter`` receives progress as it happens; by default it goes to the ``afterparty`` logger.
    """
    from afterparty.executor import Executor
    from afterparty.report import RunReport

    with _session(where) as session:
        executor = Executor(session, reporter or LoggingReporter())
        if dry_run:
            result = executor.dry_run(list(tasks), group)
        else:
            result = executor.run(list(tasks), keep_going, wait, if_busy, group)
        return RunReport.of(result, session.settings.environment, dry_run)


def status(**where: Unpack[Where]) -> StatusReport:
    """Every task file and record in version order; imports a task file only when its options
    are not literals (only an import tells whether it runs here)."""
    from afterparty.report import StatusReport, task_statuses

    with _session(where) as session:
        return StatusReport(session.settings.environment, session.url.redacted,
                            task_statuses(session))


def show(task: str, **where: Unpack[Where]) -> TaskHistory:
    """One task (by version or name) and every attempt and decision in its history."""
    from afterparty.report import TaskHistory, task_history

    with _session(where) as session:
        return TaskHistory(*task_history(session, task))


def check(**where: Unpack[Where]) -> list[TaskFile]:
    """Import every task file and check it; raises TaskFileError listing every problem.

    Needs no database: for CI on pull requests.
    """
    from afterparty.graph import check_task_files

    settings = _settings(where)
    return check_task_files(settings.tasks_dir, settings.project_root)


def mark_done(*tasks: str, every: bool = False, **where: Unpack[Where]) -> list[Decision]:
    """Record tasks (or, with ``every``, every task file) as done without running them."""
    from afterparty.decisions import mark_done as record_done
    from afterparty.errors import UsageError

    if bool(tasks) == every:
        raise UsageError("name the tasks to mark done, or give every=True (not both)")
    with _session(where) as session:
        return record_done(session, list(tasks), every)


def skip(*tasks: str, reason: str, **where: Unpack[Where]) -> list[Decision]:
    """Record tasks as skipped: they will not run; the reason is kept."""
    from afterparty.decisions import skip as record_skip

    with _session(where) as session:
        return record_skip(session, list(tasks), reason)


def forget(*tasks: str, **where: Unpack[Where]) -> list[Decision]:
    """Make tasks pending again; their history is kept."""
    from afterparty.decisions import forget as record_forget

    with _session(where) as session:
        return record_forget(session, list(tasks))


def resolve(task: str, choice: str, note: str | None = None, **where: Unpack[Where]) -> list[Decision]:
    """Settle an interrupted or failed task: ``choice`` is ``retry``, ``done`` or ``skip``."""
    from afterparty.decisions import resolve as record_resolution

    with _session(where) as session:
        return record_resolution(session, task, choice, note)


def confirm(task: str, note: str | None = None, **where: Unpack[Where]) -> list[Decision]:
    """Record a human step that awaits confirmation as done."""
    from afterparty.decisions import confirm as record_confirm

    with _session(where) as session:
        return record_confirm(session, task, note)


def rollback(task: str, record_only: bool = False, reporter: RunReporter | None = None,
             **where: Unpack[Where]) -> TaskOutcome:
    """Run a task's undo step and mark it reverted (or, ``record_only``, only mark it)."""
    from afterparty.executor import Executor

    with _session(where) as session:
        return Executor(session, reporter or LoggingReporter()).rollback(task, record_only)


def rollback_release(release: str, record_only: bool = False, dry_run: bool = False,
                     reporter: RunReporter | None = None,
                     **where: Unpack[Where]) -> ReleaseRollback:
    """Roll back every task that ran in ``release`` here (``afterparty rollback --release``):
    their undo steps, newest first (from the source kept when a file is gone); the release's
    held notices dropped; ``dry_run``: only the plan; ``record_only``: mark them reverted
    without running anything."""
    from afterparty.release_rollback import rollback_release as roll_back

    with _session(where) as session:
        return roll_back(session, reporter or LoggingReporter(), release, record_only, dry_run)


def tick(wait: float = 0.0, reporter: RunReporter | None = None,
         **where: Unpack[Where]) -> TickResult:
    """Do what became due since the last run (``afterparty tick``): tasks a run found waiting
    whose time came, held notices that are due, reminders of human steps. With nothing due it
    takes no lock; another runner holding the lock longer than ``wait`` leaves it to the next
    tick (``result.busy``)."""
    from afterparty.tick import tick as do_tick

    with _session(where) as session:
        return do_tick(session, reporter or LoggingReporter(), wait)


def init(directory: str | os.PathLike[str] = ".") -> list[str]:
    """Create the tasks directory and a ``[tool.afterparty]`` table; returns what was created."""
    from afterparty.scaffold import init_project

    return init_project(os.fspath(directory))


def new(name: str, description: str | None = None, **where: Unpack[Where]) -> str:
    """Write a new task file from the template; returns its path."""
    from afterparty.scaffold import new_task

    return new_task(_settings(where), name, description)


class LoggingReporter:
    """Progress of a run as log records of the ``afterparty`` logger (task output is kept
    with the attempt: read it with ``show``)."""

    def waiting_for_lock(self, holder: str | None) -> None:
        log.info("waiting: another runner holds the lock%s", f" ({holder})" if holder else "")

    def task_started(self, task_file: TaskFile, description: str) -> None:
        log.info("%s %s started", task_file.version, task_file.name)

    def task_output(self, text: str) -> None:
        """Nothing: the output is stored with the attempt."""

    def task_finished(self, outcome: TaskOutcome) -> None:
        log.info("%s %s %s in %.2fs", outcome.version, outcome.name, outcome.state, outcome.duration)

    def task_waiting(self, task_file: TaskFile, reason: str) -> None:
        log.info("%s %s waiting: %s", task_file.version, task_file.name, reason)

    def task_retrying(self, task_file: TaskFile, delay: float) -> None:
        log.info("%s %s failed; trying again in %gs", task_file.version, task_file.name, delay)

    def manual_step(self, task_file: TaskFile, instructions: str) -> bool:
        log.warning("%s %s awaits a person:\n%s", task_file.version, task_file.name, instructions)
        return False


def _settings(where: Where) -> Settings:
    database = where.get("database")
    tasks_dir = where.get("tasks_dir")
    return load_settings({
        "database_url": database if isinstance(database, str) else None,
        "tasks_dir": os.fspath(tasks_dir) if tasks_dir is not None else None,
        "environment": where.get("env"),
        "table_prefix": where.get("table_prefix"),
    })


@contextmanager
def _session(where: Where) -> Iterator[Session]:
    settings = _settings(where)
    timeout = where.get("connect_timeout", 30.0)
    database: Any = where.get("database")
    if database is not None and not isinstance(database, str):
        from afterparty.backends.sqlalchemy import engine_database

        session = Session(settings, timeout, database=engine_database(database, timeout))
    else:
        session = Session(settings, timeout)
    try:
        yield session
    finally:
        session.close()
