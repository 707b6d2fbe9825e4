"""MkDocs hook: the parts of the manual that are generated from the code, so they cannot drift.

- The command reference names the click group of the console script that pyproject.toml
  declares (``[project.scripts] afterparty = ...``), wherever the code keeps it.
- The state machine's tables are drawn from the one transition table,
  ``afterparty.states.TRANSITIONS``: every move (who makes it, under which fence), and the
  decisions a person is offered in each state (``states.offered``).
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
MOVES_TABLE = "<!-- generated: the transition table -->"
OFFERED_TABLE = "<!-- generated: the decisions offered in each state -->"


def entry_point_group() -> tuple[str, str]:
    """The module and attribute of the click group behind the ``afterparty`` console script."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module_name, attribute = scripts["afterparty"].split(":")
    target = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, click.Command):
        return module_name, attribute
    # A function that hands over to another module's ``main`` (afterparty.entry answers a
    # no-op run itself, and imports the command line only for everything else): follow it.
    handed_to = [main for name in target.__code__.co_names
                 if name.startswith("afterparty.") and name != module_name
                 and callable(main := getattr(importlib.import_module(name), "main", None))]
    if len(handed_to) == 1:
        target = handed_to[0]
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


def _names(found: Any) -> str:
    from afterparty import states

    return ", ".join(f"`{state.value}`" for state in sorted(found, key=list(states.State).index))


def transition_table() -> str:
    """Every allowed move: ``Recorder.move`` refuses any other."""
    from afterparty import states

    rows = ["| move | from | to | made by | under the fence of | changes nothing from |",
            "|---|---|---|---|---|---|"]
    for move in states.TRANSITIONS:
        rows.append(
            f"| {move.name} | {_names(move.sources)} | `{move.to.value}` | "
            f"{', '.join(sorted(actor.value for actor in move.by))} | "
            f"{', '.join(sorted(guard.value for guard in move.guards))} | {_names(move.keep) or '—'} |")
    return "\n".join(rows) + "\n"


def offered_table() -> str:
    """What the command line accepts, and the console and the admin show, in each state."""
    from afterparty import states

    rows = ["| state | a person may |", "|---|---|"]
    for state in states.State:
        offered = ", ".join(f"`{action.value}`" for action in states.offered(state)) or "— (wait)"
        rows.append(f"| `{state.value}` | {offered} |")
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, **_: Any) -> str:
    if COMMAND_REFERENCE in markdown:
        markdown = markdown.replace(COMMAND_REFERENCE, command_reference())
    if MOVES_TABLE in markdown:
        markdown = markdown.replace(MOVES_TABLE, transition_table())
    if OFFERED_TABLE in markdown:
        markdown = markdown.replace(OFFERED_TABLE, offered_table())
    return markdown
