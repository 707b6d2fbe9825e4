"""afterparty: run one-off release tasks exactly once per environment.

Task files need only ``from afterparty import task``; ``afterparty.run(...)``,
``afterparty.status(...)`` and the other commands are the Python API (afterparty.api).
The names below load on first use, so that the command line's no-op path imports
nothing it does not need. No submodule may share a name with them: importing it would
rebind the name to the module (hence ``afterparty.report`` holds status rows).
"""

from __future__ import annotations

from afterparty.version import __version__

# Not typing's: importing typing would cost every command, the no-op run included.
TYPE_CHECKING = False

__all__ = [
    "AfterpartyError",
    "Context",
    "Task",
    "__version__",
    "check",
    "confirm",
    "forget",
    "init",
    "mark_done",
    "new",
    "resolve",
    "rollback",
    "rollback_release",
    "run",
    "show",
    "skip",
    "status",
    "task",
    "tick",
]

if TYPE_CHECKING:
    from typing import Any

    from afterparty.api import (
        check,
        confirm,
        forget,
        init,
        mark_done,
        new,
        resolve,
        rollback,
        rollback_release,
        run,
        show,
        skip,
        status,
        tick,
    )
    from afterparty.context import Context
    from afterparty.definition import Task, task
    from afterparty.errors import AfterpartyError

_LAZY = {
    "task": "afterparty.definition",
    "Task": "afterparty.definition",
    "Context": "afterparty.context",
    "AfterpartyError": "afterparty.errors",
    "check": "afterparty.api",
    "confirm": "afterparty.api",
    "forget": "afterparty.api",
    "init": "afterparty.api",
    "mark_done": "afterparty.api",
    "new": "afterparty.api",
    "resolve": "afterparty.api",
    "rollback": "afterparty.api",
    "run": "afterparty.api",
    "show": "afterparty.api",
    "skip": "afterparty.api",
    "status": "afterparty.api",
    "tick": "afterparty.api",
    "rollback_release": "afterparty.api",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'afterparty' has no attribute {name!r}")
