"""afterparty: run one-off release tasks exactly once per environment.

Task files need only ``from afterparty import task``. The names below load on first
use, so that the command line's no-op path imports nothing it does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "AfterpartyError",
    "Context",
    "Task",
    "__version__",
    "task",
]

if TYPE_CHECKING:
    from afterparty.context import Context
    from afterparty.definition import Task, task
    from afterparty.errors import AfterpartyError

_LAZY = {
    "task": "afterparty.definition",
    "Task": "afterparty.definition",
    "Context": "afterparty.context",
    "AfterpartyError": "afterparty.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'afterparty' has no attribute {name!r}")
