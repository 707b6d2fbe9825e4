"""The one definition of pending, used by the lock-free no-op check and by the plan made under
the lock; and whether a pending task may run now (no SQL, no running)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timezone

from afterparty.config import detect_release
from afterparty.states import ROLLBACK_FROM, RUN_HAS_WORK, State
from afterparty.tuples import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any

    from afterparty.backends.base import Database
    from afterparty.config import Settings
    from afterparty.definition import Task
    from afterparty.durations import ReleaseClock
    from afterparty.loader import TaskFile
    from afterparty.release_records import RecordsLook


def pending_task_files(files: list[TaskFile], states: dict[str, State],
                       environment: str) -> list[TaskFile]:
    """The task files ``run`` may have work for, in version order, without importing any.

    A file is pending when its record says so (``states``: the state as ``run`` sees it), or
    when it has no record and its @task is meant for this environment. Whether it is meant for
    here is read from the decorator's syntax; a file whose options are not literals counts as
    pending here, and importing it decides (``Task.runs_in``).
    """
    pending = []
    has_work = RUN_HAS_WORK
    for task_file in files:
        state = states.get(task_file.version)
        if state is not None:
            if state in has_work:
                pending.append(task_file)
        elif _meant_for(task_file, environment):
            pending.append(task_file)
    return pending


def _awaiting(files: list[TaskFile], states: dict[str, State]) -> list[TaskFile]:
    """The task files whose human step awaits a person (most runs have none to look for)."""
    if State.AWAITING not in states.values():
        return []
    waiting = {version for version, state in states.items() if state is State.AWAITING}
    return [f for f in files if f.version in waiting]


def _meant_for(task_file: TaskFile, environment: str) -> bool:
    """Whether a task file without a record may run here, as far as its syntax tells. A file
    that never spells ``environments`` names no environment (no need to parse it: as for
    options that are not literals, importing it decides what it could say otherwise)."""
    from afterparty.facts import read_source_facts, read_with_checksum

    if b"environments" not in read_with_checksum(task_file.path)[0]:
        return True
    facts = read_source_facts(task_file.path)
    return not (facts.literal and facts.environments is not None
                and environment not in facts.environments)


def meant_for_here(task_file: TaskFile, environment: str, project_root: str) -> bool:
    """Whether a task file runs in this environment at all: its syntax tells when its options
    are literals (``environments=["production"]``); otherwise an import does, as it does for
    ``run`` (``environments=ONLY``). A file that cannot be imported counts as meant for here:
    ``run`` reports it. ``status``, ``verify`` and the console ask this, so that they call
    pending exactly what ``run`` would run."""
    from afterparty.facts import read_source_facts

    facts = read_source_facts(task_file.path)
    if facts.literal:
        return facts.environments is None or environment in facts.environments
    from afterparty.errors import TaskFileError
    from afterparty.loader import load_tasks

    if project_root not in sys.path:
        sys.path.insert(0, project_root)
    try:
        task = load_tasks([task_file])[task_file.version]
    except TaskFileError:
        return True
    return task.runs_in(environment)


class Look(NamedTuple):
    """What a lock-free look found: every task file and what ``run`` has to do."""

    pending: list[TaskFile]
    awaiting: list[TaskFile]
    #: Held notices are due (``run`` and ``tick`` send them under the lock).
    notices_due: bool = False
    #: The release deployed now, when the records do not know it yet (``run`` records it).
    new_release: str | None = None
    #: Tasks that ran in a release deployed here after this one and whose files are gone now
    #: (a deploy of an older release rolled that one back): version -> that release.
    rolled_back: dict[str, str] = {}  # noqa: RUF012 - a NamedTuple's default, never changed


def lock_free_look(settings: Settings, database: Database) -> Look | None:
    """The look every no-op deploy takes: one listing, one query, no import, no lock.

    It may only conclude "nothing to do" (guarantee 2): a non-empty ``pending`` is decided
    again under the lock. None when the tasks directory holds something the loader would
    refuse (the plan reports it).
    """
    import gc

    from afterparty.loader import list_task_files

    # Tens of thousands of short-lived strings and rows, and no reference cycle among them:
    # the collector would only walk every object of the process again and again.
    enabled = gc.isenabled()
    gc.disable()
    try:
        files = list_task_files(settings.tasks_dir)
        if files is None:
            return None
        release = detect_release(settings)
        seen = _records_look(settings, database, release)
        if seen is None:
            from afterparty.recorder import Recorder

            states = Recorder(database, settings.table_prefix).read_states()
            return Look(pending=pending_task_files(files, states, settings.environment),
                        awaiting=_awaiting(files, states))
        states = seen.states
        return Look(pending=pending_task_files(files, states, settings.environment),
                    awaiting=_awaiting(files, states), notices_due=_due(seen),
                    new_release=release if seen.release_known is False else None,
                    rolled_back=files_gone(files, states, seen.ran_later))
    finally:
        if enabled:
            gc.enable()


def files_gone(files: list[TaskFile], states: dict[str, State],
               ran_later: dict[str, str]) -> dict[str, str]:
    """Of the tasks that ran in a later release (version -> release), those whose files are
    gone and whose work stands (they ran, and were not reverted since)."""
    if not ran_later:
        return {}
    present = {task_file.version for task_file in files}
    return {version: release for version, release in ran_later.items()
            if version not in present and states.get(version) in ROLLBACK_FROM}


def _records_look(settings: Settings, database: Database,
                  release: str | None) -> RecordsLook | None:
    """The records' states with what else may have work, in one query (None: records older
    than the outbox, or none yet)."""
    from afterparty.release_records import ReleaseRecords

    return ReleaseRecords(database, settings.table_prefix).look(release)


def _due(seen: RecordsLook | None) -> bool:
    """Whether a held notice is due now."""
    if seen is None or seen.first_notice_due is None:
        return False
    from afterparty.session import utc_now

    return seen.first_notice_due <= utc_now()


class Readiness(NamedTuple):
    """Whether a pending task may run now: ``reason`` says why not; ``later`` waits for this run."""

    reason: str | None = None
    later: bool = False


def readiness(task: Task, task_file: TaskFile, states: dict[str, State],
              files_by_key: dict[str, TaskFile], this_run: set[str],
              context: Callable[[], Any], clock: ReleaseClock | None = None) -> Readiness:
    """Dependencies first, then ``not_before``, then ``live_for`` (how long the release has
    been live here, by ``clock``), then the ``when`` condition, called with the ``ctx`` that
    ``context`` makes (only then)."""
    unmet = []
    for key in task.depends_on:
        dependency = files_by_key[key]
        state = states.get(dependency.version, State.PENDING)
        if state is State.SUCCEEDED:
            continue
        if dependency.version in this_run and dependency.version != task_file.version:
            return Readiness(later=True)
        unmet.append(f"{dependency.label} ({state})")
    if unmet:
        return Readiness(f"depends on {', '.join(unmet)}")
    if task.not_before is not None and datetime.now(timezone.utc) < task.not_before:
        return Readiness(f"not before {task.not_before.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
    if task.live_for is not None and clock is not None:
        waiting = clock.waiting(task.live_for)
        if waiting is not None:
            return Readiness(waiting)
    if task.when is not None:
        name = getattr(task.when, "__name__", "when")
        try:
            allowed = task.when(context())
        # A condition that cannot be checked is not met; one that calls sys.exit() or raises
        # KeyboardInterrupt itself must not end the run (a signal raises StoppedBySignal).
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            return Readiness(f"condition {name} raised {type(exc).__name__}: {exc}")
        if not allowed:
            doc = (task.when.__doc__ or "").strip().split("\n")[0]
            return Readiness(f"condition {name} is not met yet" + (f" ({doc})" if doc else ""))
    return Readiness()


def check_group(tasks_dir: str, group: str) -> None:
    """``run --group NAME`` with a name no task file uses is a typo, not "nothing to do":
    UsageError naming the groups there are (read from the files' syntax, no import)."""
    from afterparty.errors import UsageError
    from afterparty.facts import read_source_facts
    from afterparty.loader import scan_tasks_dir

    groups = {read_source_facts(f.path).group for f in scan_tasks_dir(tasks_dir)}
    if group in groups or None in groups:  # None: a group only an import can tell
        return
    known = ", ".join(sorted(g for g in groups if g is not None)) or "none: there are no task files"
    raise UsageError(f"unknown group {group!r}; the groups of the task files are: {known}")



def reason_now(stored: str, states: dict[str, State]) -> str | None:
    """A waiting reason kept by the last run, brought up to date with the records as they are
    now: a dependency that has since succeeded (a human step confirmed) no longer holds the task,
    and one in another state is named in that state; a ``not_before`` time that has passed no
    longer holds it either, nor a release that has been live long enough (``live_for``). None
    when nothing holds it any more (the next run or tick runs it)."""
    if stored.startswith("depends on "):
        import re  # not on the no-op path

        unmet = [f"{version}_{name} ({states.get(version, State.PENDING)})"
                 for version, name, _ in re.findall(r"(\d{14})_([a-z0-9_]+) \((\w+)\)", stored)
                 if states.get(version) is not State.SUCCEEDED]
        return f"depends on {', '.join(unmet)}" if unmet else None
    if stored.startswith("release ") and " live for " in stored:
        from afterparty.durations import live_reason_now

        return live_reason_now(stored)
    if stored.startswith("not before "):
        try:
            when = datetime.strptime(stored, "not before %Y-%m-%d %H:%M:%S UTC")
        except ValueError:
            return stored
        return stored if datetime.now(timezone.utc) < when.replace(tzinfo=timezone.utc) else None
    return stored
