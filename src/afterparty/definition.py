"""The @task decorator and the options a task declares (the definition of a task)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from afterparty.context import Context

TaskBody = Callable[["Context"], Any]
Condition = Callable[["Context"], bool]

ON_INTERRUPT_CHOICES = ("retry", "hold")
DEFAULT_GROUP = "default"

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
    undo_body: TaskBody | None = field(default=None, repr=False)

    def __call__(self, ctx: Context) -> Any:
        return self.body(ctx)

    def undo(self, func: TaskBody) -> TaskBody:
        """Declare the step ``afterparty rollback`` runs: ``@run.undo`` under the task."""
        self.undo_body = func
        return func

    def runs_in(self, environment: str) -> bool:
        """Whether this task is meant for that environment at all."""
        return self.environments is None or environment in self.environments

    def instructions(self, ctx: Context) -> str:
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
    not_before: datetime | None = None,
    recurring: bool = False,
    timeout: float | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
    manual: bool = False,
    owner: str | None = None,
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
    not_before: datetime | None = None,
    recurring: bool = False,
    timeout: float | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
    manual: bool = False,
    owner: str | None = None,
) -> Task | Callable[[TaskBody], Task]:
    """Declare the function a task file runs; use as ``@task`` or ``@task(description=...)``.

    Every option is described in the README ("Task options").
    """
    _check_options(on_interrupt, environments, depends_on, when, timeout, retries, retry_delay)

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
            not_before=_as_utc(not_before),
            recurring=recurring,
            timeout=timeout,
            retries=retries,
            retry_delay=retry_delay,
            manual=manual,
            owner=owner,
        )
        if _collected is not None:
            _collected.append(declared)
        return declared

    if body is not None:
        return decorate(body)
    return decorate


def _check_options(on_interrupt: str, environments: Sequence[str] | None,
                   depends_on: Sequence[str], when: Condition | None, timeout: float | None,
                   retries: int, retry_delay: float) -> None:
    if on_interrupt not in ON_INTERRUPT_CHOICES:
        raise ValueError(
            f"on_interrupt must be one of {', '.join(ON_INTERRUPT_CHOICES)}, not {on_interrupt!r}"
        )
    for name, value in (("environments", environments), ("depends_on", depends_on)):
        if isinstance(value, str):
            raise TypeError(f"{name} takes a list of strings, not the string {value!r}")
    if when is not None and not callable(when):
        raise TypeError("when takes a function of ctx that returns True when the task may run")
    if timeout is not None and timeout <= 0:
        raise ValueError("timeout is a number of seconds greater than 0")
    if retries < 0 or retry_delay < 0:
        raise ValueError("retries and retry_delay cannot be negative")


def _as_utc(moment: datetime | None) -> datetime | None:
    """A naive not_before is taken as UTC, so it means the same on every server."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)
