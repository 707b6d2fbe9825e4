"""MkDocs hook: the parts of the manual that are generated from the code, so they cannot drift.

- The command reference names the click group of the console script that pyproject.toml
  declares (``[project.scripts] afterparty = ...``), wherever the code keeps it.
- The decisions table of the state machine is drawn from the transition table,
  ``afterparty.states.MOVES`` (and ``ROLLBACK_FROM``).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import click

if sys.version_info >= (3, 11):
    import tomllib
else:  # afterparty depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
COMMAND_REFERENCE = "<!-- generated: the command reference -->"
DECISIONS_TABLE = "<!-- generated: the decisions table -->"


def entry_point_group() -> tuple[str, str]:
    """The module and attribute of the click group behind the ``afterparty`` console script."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module_name, attribute = scripts["afterparty"].split(":")
    target = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, click.Command):
        return module_name, attribute
    # A plain function (sets up, then calls the group): the group is the one among its globals.
    groups = [name for name, value in target.__globals__.items()
              if isinstance(value, click.Group) and name in target.__code__.co_names]
    if len(groups) != 1:
        raise RuntimeError(f"cannot tell which click group {scripts['afterparty']} runs: {groups}")
    return target.__module__, groups[0]


def command_reference() -> str:
    module_name, attribute = entry_point_group()
    return (f"::: mkdocs-click\n    :module: {module_name}\n    :command: {attribute}\n"
            "    :prog_name: afterparty\n    :depth: 1\n    :style: plain\n"
            "    :list_subcommands: true\n")


def decisions_table() -> str:
    from afterparty import states

    def names(found: Any) -> str:
        return ", ".join(f"`{state.value}`" for state in sorted(found, key=list(states.State).index))

    every = frozenset(states.State)
    rows = ["| decision | from | to | changes nothing from |", "|---|---|---|---|"]
    for action, move in states.MOVES.items():
        start = move.only_from if move.only_from is not None else every - move.keep - {move.to}
        unchanged = (set(move.keep) | {move.to}) if move.only_from is None else set()
        rows.append(f"| `{action.value}` | {names(start)} | `{move.to.value}` | {names(unchanged) or '—'} |")
    rows.append(f"| `rollback` (its undo step) | {names(states.ROLLBACK_FROM)} | "
                f"`{states.State.REVERTED.value}` | — |")
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, **_: Any) -> str:
    if COMMAND_REFERENCE in markdown:
        markdown = markdown.replace(COMMAND_REFERENCE, command_reference())
    if DECISIONS_TABLE in markdown:
        markdown = markdown.replace(DECISIONS_TABLE, decisions_table())
    return markdown
