"""The console's pages: the overview, the matrix, one task in one environment, and the history
of every run and decision."""

from __future__ import annotations

import ast
import asyncio
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from afterparty.backends.url import redact
from afterparty.errors import AfterpartyError, UnknownTaskError
from afterparty.records import Attempt
from afterparty.report import TaskStatus
from afterparty.states import RESOLVE_ACTIONS, Action, State, offered
from afterparty.web.auth import MAX_NAME_LENGTH, User
from afterparty.web.console import Console
from afterparty.web.environments import (
    UNDER_WAY,
    matrix,
    overview_rows,
    read_history,
    read_releases,
    read_task,
    release_plan,
)


async def releases(console: Console, request: Request, user: User) -> Response:
    """One environment's releases, the newest first: when each was first deployed (and rolled
    back), the tasks that ran in it and its held notices; with ``release``, what rolling it back
    would do (the dry run of ``rollback --release``: running it stays a command)."""
    environment = request.path_params["environment"]
    release = request.path_params.get("release")
    settings = console.settings_of(environment)
    if settings is None:
        return console.refuse(request, user, 404, f"no environment named {environment!r} here")
    seen, error = await console.within_deadline(read_releases, console.config, environment)
    plan: list[str] | None = None
    if release is not None and error is None:
        if release not in {view.release_id for view in seen or []}:
            return console.refuse(request, user, 404, f"{environment} has seen no release {release!r}")
        plan = await run_in_threadpool(release_plan, console.config, environment, release)
    return console.render(request, "releases.html", user, environment=environment,
                          releases=seen or [], error=error, release=release, plan=plan,
                          command=settings.command)


async def overview(console: Console, request: Request, user: User) -> Response:
    environments = [overview_rows(environment)
                    for environment in await console.read_environments(overview=True)]
    return console.render(request, "overview.html", user, environments=environments,
                          moving=any(environment.moving for environment in environments))


async def task_matrix(console: Console, request: Request, user: User) -> Response:
    environments = await console.read_environments()
    return console.render(request, "matrix.html", user, environments=environments,
                          rows=matrix(environments),
                          moving=any(environment.moving for environment in environments))


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
                          error=error, moving=State(row.state) in UNDER_WAY and not row.gone)


# Each form of the task page, and the decisions it takes.
FORMS: dict[str, frozenset[Action]] = {
    "confirm": frozenset({Action.CONFIRM}),
    "resolve": frozenset(RESOLVE_ACTIONS.values()),
    "skip": frozenset({Action.SKIP}),
    "pause": frozenset({Action.PAUSE}),
    "resume": frozenset({Action.RESUME}),
    "cancel": frozenset({Action.CANCEL}),
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


# Entries on one page of the history; pages beyond the last one read are not offered.
HISTORY_PAGE = 50
HISTORY_PAGES = 200


@dataclass(frozen=True)
class HistoryFilter:
    """What the history page shows: which environments, whose decisions, which task, which page."""

    environments: list[str]
    environment: str
    person: str
    task: str
    page: int

    def query(self, page: int) -> str:
        """The page's address query for another page of the same entries."""
        wanted = {"env": self.environment, "person": self.person, "task": self.task}
        return urlencode({**{k: v for k, v in wanted.items() if v}, "page": page})


async def history(console: Console, request: Request, user: User) -> Response:
    """Who did what, across tasks and environments: every run and decision, newest first,
    filtered by environment, person and task, a page at a time."""
    query = request.query_params
    environment = query.get("env", "")
    if environment and console.settings_of(environment) is None:
        return console.refuse(request, user, 404, f"no environment named {environment!r} here")
    try:
        page = min(max(int(query.get("page", "1")), 1), HISTORY_PAGES)
    except ValueError:
        page = 1
    wanted = HistoryFilter([environment] if environment else list(console.config.environments),
                           environment, query.get("person", "").strip()[:MAX_NAME_LENGTH],
                           query.get("task", "").strip()[:255], page)
    # Each environment's newest entries down to this page's, one query each, side by side.
    read = dict(zip(wanted.environments, await asyncio.gather(*(
        console.within_deadline(read_history, console.config, name, page * HISTORY_PAGE + 1,
                                wanted.person or None, wanted.task or None)
        for name in wanted.environments)), strict=True))
    entries = sorted(((attempt, name) for name, (attempts, _) in read.items()
                      for attempt in attempts or []),
                     key=lambda entry: (entry[0].started_at, entry[0].id), reverse=True)
    return console.render(
        request, "history.html", user, wanted=wanted, config_environments=list(console.config.environments),
        entries=entries[(page - 1) * HISTORY_PAGE:page * HISTORY_PAGE],
        older=len(entries) > page * HISTORY_PAGE and page < HISTORY_PAGES,
        errors=[(name, error) for name, (_, error) in read.items() if error])
