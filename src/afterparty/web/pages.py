"""The console's pages: the overview, the matrix, and one task in one environment."""

from __future__ import annotations

import ast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from afterparty.backends.url import redact
from afterparty.errors import AfterpartyError, UnknownTaskError
from afterparty.records import Attempt
from afterparty.report import TaskStatus
from afterparty.states import RESOLVE_ACTIONS, Action, State, offered
from afterparty.web.auth import User
from afterparty.web.console import Console
from afterparty.web.environments import matrix, read_task


async def overview(console: Console, request: Request, user: User) -> Response:
    environments = await console.read_environments()
    return console.render(request, "overview.html", user, environments=environments)


async def task_matrix(console: Console, request: Request, user: User) -> Response:
    environments = await console.read_environments()
    return console.render(request, "matrix.html", user, environments=environments,
                          rows=matrix(environments))


async def task_page(console: Console, request: Request, user: User, error: str | None = None,
                    status_code: int = 200) -> Response:
    """One task in one environment: what ``show`` prints, its instructions, and the decisions
    that apply to its state. ``error`` says why a decision was refused."""
    environment = request.path_params["environment"]
    version = request.path_params["version"]
    if console.settings_of(environment) is None:
        return console.refuse(request, user, 404, f"no environment named {environment!r} here")
    try:
        row, attempts = await run_in_threadpool(read_task, console.config, environment, version)
    except UnknownTaskError as exc:
        return console.refuse(request, user, 404, str(exc))
    except AfterpartyError as exc:
        return console.render(request, "task.html", user, 503, environment=environment,
                              version=version, row=None, error=redact(str(exc)))
    return console.render(request, "task.html", user, status_code, environment=environment,
                          version=version, row=row, attempts=list(enumerate(attempts, 1)),
                          instructions=instructions(row, attempts), actions=actions_for(row),
                          error=error)


# Each form of the task page, and the decisions it takes.
FORMS: dict[str, frozenset[Action]] = {
    "confirm": frozenset({Action.CONFIRM}),
    "resolve": frozenset(RESOLVE_ACTIONS.values()),
    "skip": frozenset({Action.SKIP}),
}


def forms_for(actions: list[Action]) -> list[str]:
    """The forms that take any of ``actions``."""
    return [form for form, takes in FORMS.items() if takes & set(actions)]


def actions_for(row: TaskStatus) -> list[str]:
    """The console's forms for a task in this state: the decisions the transition table offers
    (states.offered), as the forms that take them."""
    return forms_for(offered(State(row.state)))


def instructions(row: TaskStatus, attempts: list[Attempt]) -> str | None:
    """A human step's instructions: as its last run gave them, else its function's docstring."""
    given = [a.output for a in attempts if a.state == State.AWAITING.value and a.output]
    if given:
        return given[-1]
    if row.path is None:
        return None
    from afterparty.facts import read_source_facts

    if not read_source_facts(row.path).manual:
        return None
    docstring = _docstring(row.path)
    return None if docstring is None else redact(docstring)


def _docstring(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.decorator_list:
            return ast.get_docstring(node)
    return None
