"""The @task decorator and the options a task declares (the definition of a task)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from afterparty.context import Context

TaskBody = Callable[["Context"], Any]

ON_INTERRUPT_CHOICES = ("retry", "hold")

# The loader sets this to a list while it imports one task file, so the decorator can
# hand it the tasks that file declares (exactly one is allowed).
_collected: list[Task] | None = None


@dataclass
class Task:
    """One release task: its body and the options given to @task."""

    body: TaskBody
    description: str = ""
    on_interrupt: str = "retry"

    def __call__(self, ctx: Context) -> Any:
        return self.body(ctx)


@overload
def task(body: TaskBody, /) -> Task: ...


@overload
def task(*, description: str = "", on_interrupt: str = "retry") -> Callable[[TaskBody], Task]: ...


def task(
    body: TaskBody | None = None,
    /,
    *,
    description: str = "",
    on_interrupt: str = "retry",
) -> Task | Callable[[TaskBody], Task]:
    """Declare the function a task file runs; use as ``@task`` or ``@task(description=...)``."""
    if on_interrupt not in ON_INTERRUPT_CHOICES:
        raise ValueError(
            f"on_interrupt must be one of {', '.join(ON_INTERRUPT_CHOICES)}, not {on_interrupt!r}"
        )

    def decorate(func: TaskBody) -> Task:
        if not callable(func):
            raise TypeError("@task decorates a function that takes one argument, ctx")
        declared = Task(
            body=func,
            description=description or (func.__doc__ or "").strip().split("\n")[0],
            on_interrupt=on_interrupt,
        )
        if _collected is not None:
            _collected.append(declared)
        return declared

    if body is not None:
        return decorate(body)
    return decorate
