"""The @task decorator and the options a task declares (the definition of a task)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, overload

# Each is called with the task's ``ctx`` (afterparty.Context); the definition of a task sits
# below the code that runs it, so it names no type of that code.
TaskBody = Callable[[Any], Any]
Condition = Callable[[Any], bool]
#: A task's ``throttle``: how many seconds its next batch should wait (0 or None: go now).
Throttle = Callable[[Any], "float | None"]

ON_INTERRUPT_CHOICES = ("retry", "hold")
DEFAULT_GROUP = "default"

class TaskOptionError(TypeError):
    """An option given to @task has the wrong type or value (the loader names file and line)."""


# The loader sets this to a list while it imports one task file, so the decorator can
# hand it the tasks that file declares (exactly one is allowed).
_collected: list[Task] | None = None


@dataclass
class Task:
    """One release task: its body and the options given to @task."""

    body: TaskBody
    description: str = ""
    on_interrupt: str = "retry"
    environments: tuple[str, ...] | None = None
    group: str = DEFAULT_GROUP
    depends_on: tuple[str, ...] = ()
    when: Condition | None = None
    not_before: datetime | None = None
    recurring: bool = False
    timeout: float | None = None
    retries: int = 0
    retry_delay: float = 1.0
    manual: bool = False
    owner: str | None = None
    atomic: bool = True
    throttle: Throttle | None = None
    background: bool = False
    #: Seconds the release deployed now must have been live here before the task runs.
    live_for: float | None = None
    #: A human step's reminders (``tick``): to its owner every ``remind_every`` seconds while
    #: it awaits, and to ``escalate_to`` as well once it has waited ``escalate_after``.
    remind_every: float | None = None
    escalate_after: float | None = None
    escalate_to: str | None = None
    undo_body: TaskBody | None = field(default=None, repr=False)

    def __call__(self, ctx: Any) -> Any:
        return self.body(ctx)

    def undo(self, func: TaskBody) -> TaskBody:
        """Declare the step ``afterparty rollback`` runs: ``@run.undo`` under the task."""
        self.undo_body = func
        return func

    def runs_in(self, environment: str) -> bool:
        """Whether this task is meant for that environment at all."""
        return self.environments is None or environment in self.environments

    def instructions(self, ctx: Any) -> str:
        """A manual task's text for a person: what its body returns, else its docstring."""
        import inspect

        returned = self.body(ctx)
        if isinstance(returned, str) and returned.strip():
            return inspect.cleandoc(returned)
        return inspect.cleandoc(self.body.__doc__ or self.description or "")


@overload
def task(body: TaskBody, /) -> Task: ...


@overload
def task(
    *,
    description: str = "",
    on_interrupt: str = "retry",
    environments: Sequence[str] | None = None,
    group: str = DEFAULT_GROUP,
    depends_on: Sequence[str] = (),
    when: Condition | None = None,
    not_before: datetime | str | None = None,
    recurring: bool = False,
    timeout: float | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
    manual: bool = False,
    owner: str | None = None,
    atomic: bool = True,
    throttle: Throttle | None = None,
    background: bool = False,
    live_for: str | float | timedelta | None = None,
    remind_every: str | float | timedelta | None = None,
    escalate_after: str | float | timedelta | None = None,
    escalate_to: str | None = None,
) -> Callable[[TaskBody], Task]: ...


def task(
    body: TaskBody | None = None,
    /,
    *,
    description: str = "",
    on_interrupt: str = "retry",
    environments: Sequence[str] | None = None,
    group: str = DEFAULT_GROUP,
    depends_on: Sequence[str] = (),
    when: Condition | None = None,
    not_before: datetime | str | None = None,
    recurring: bool = False,
    timeout: float | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
    manual: bool = False,
    owner: str | None = None,
    atomic: bool = True,
    throttle: Throttle | None = None,
    background: bool = False,
    live_for: str | float | timedelta | None = None,
    remind_every: str | float | timedelta | None = None,
    escalate_after: str | float | timedelta | None = None,
    escalate_to: str | None = None,
) -> Task | Callable[[TaskBody], Task]:
    """Declare the function a task file runs; use as ``@task`` or ``@task(description=...)``.

    Every option is described in the README ("Task options").
    """
    _check_options(description=description, on_interrupt=on_interrupt, environments=environments,
                   group=group, depends_on=depends_on, when=when, not_before=not_before,
                   recurring=recurring, timeout=timeout, retries=retries, retry_delay=retry_delay,
                   manual=manual, owner=owner, atomic=atomic, throttle=throttle,
                   background=background)
    live_seconds = _seconds("live_for", live_for)
    reminders = _reminders(manual, remind_every, escalate_after, escalate_to)

    def decorate(func: TaskBody) -> Task:
        if not callable(func):
            raise TypeError("@task decorates a function that takes one argument, ctx")
        declared = Task(
            body=func,
            description=description or (func.__doc__ or "").strip().split("\n")[0],
            on_interrupt=on_interrupt,
            environments=tuple(environments) if environments is not None else None,
            group=group,
            depends_on=tuple(depends_on),
            when=when,
            not_before=_as_utc(_as_datetime(not_before)),
            recurring=recurring,
            timeout=float(timeout) if timeout is not None else None,
            retries=retries,
            retry_delay=retry_delay,
            manual=manual,
            owner=owner,
            atomic=atomic,
            throttle=throttle,
            background=background,
            live_for=live_seconds,
            remind_every=reminders[0],
            escalate_after=reminders[1],
            escalate_to=escalate_to,
        )
        if _collected is not None:
            _collected.append(declared)
        return declared

    if body is not None:
        return decorate(body)
    return decorate


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_options(**options: Any) -> None:
    """Every option's type and range, so that a wrong one is a clear error where the task file
    is imported (``check``, ``run``: exit 2 with file and line), never a TypeError mid-run."""
    def wrong(name: str, expected: str) -> TaskOptionError:
        return TaskOptionError(f"@task({name}=...) takes {expected}, not {options[name]!r}")

    if options["on_interrupt"] not in ON_INTERRUPT_CHOICES:
        raise wrong("on_interrupt", " or ".join(repr(c) for c in ON_INTERRUPT_CHOICES))
    for name in ("description", "group"):
        if not isinstance(options[name], str):
            raise wrong(name, "a string")
    if options["owner"] is not None and not isinstance(options["owner"], str):
        raise wrong("owner", "a string")
    for name in ("environments", "depends_on"):
        value = options[name]
        if value is None and name == "environments":
            continue
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)) \
                or not all(isinstance(item, str) for item in value):
            raise wrong(name, "a list of strings")
    if options["when"] is not None and not callable(options["when"]):
        raise wrong("when", "a function of ctx that returns True when the task may run")
    if options["throttle"] is not None and not callable(options["throttle"]):
        raise wrong("throttle", "a function of ctx that returns how many seconds to wait")
    for name in ("recurring", "manual", "atomic", "background"):
        if not isinstance(options[name], bool):
            raise wrong(name, "True or False")
    timeout = options["timeout"]
    if timeout is not None and (not _is_number(timeout) or timeout <= 0):
        raise wrong("timeout", "a number of seconds greater than 0")
    if not isinstance(options["retries"], int) or isinstance(options["retries"], bool) \
            or options["retries"] < 0:
        raise wrong("retries", "a whole number, 0 or more")
    if not _is_number(options["retry_delay"]) or options["retry_delay"] < 0:
        raise wrong("retry_delay", "a number of seconds, 0 or more")
    if options["not_before"] is not None:
        _as_datetime(options["not_before"])
    if options["background"] and options["manual"]:
        raise TaskOptionError("@task(background=True) runs on a worker: a human step "
                              "(manual=True) cannot be one")


def _seconds(option: str, span: object) -> float | None:
    """A span of time option (``live_for="30m"``) in seconds; TaskOptionError when it is none."""
    if span is None:
        return None
    from afterparty.durations import DurationError, seconds_of

    try:
        return seconds_of(span, f"@task({option}=...)")
    except DurationError as exc:
        raise TaskOptionError(str(exc)) from None


def _reminders(manual: bool, remind_every: object, escalate_after: object,
               escalate_to: object) -> tuple[float | None, float | None]:
    """A human step's reminder options, checked: spans of time, and whom to escalate to."""
    every, after = _seconds("remind_every", remind_every), _seconds("escalate_after", escalate_after)
    if (every is not None or after is not None or escalate_to is not None) and not manual:
        raise TaskOptionError("remind_every, escalate_after and escalate_to remind people of a "
                              "human step: they need manual=True")
    if escalate_to is not None and not isinstance(escalate_to, str):
        raise TaskOptionError(f"@task(escalate_to=...) takes a name (of notify.owners), not "
                              f"{escalate_to!r}")
    if (after is None) != (escalate_to is None):
        raise TaskOptionError("escalate_after and escalate_to go together: after how long, and "
                              "whom to tell")
    return every, after


def _as_datetime(moment: datetime | str | None) -> datetime | None:
    """not_before as a datetime; an ISO 8601 string ("2030-01-01T09:00:00Z") is accepted too."""
    if moment is None or isinstance(moment, datetime):
        return moment
    if isinstance(moment, str):
        try:
            return datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            pass
    raise TaskOptionError(f"@task(not_before=...) takes a datetime or an ISO 8601 string such as "
                    f"'2030-01-01T09:00:00Z', not {moment!r}")


def _as_utc(moment: datetime | None) -> datetime | None:
    """A naive not_before is taken as UTC, so it means the same on every server."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)
