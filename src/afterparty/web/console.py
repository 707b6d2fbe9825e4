"""The console's shared parts: its settings, who is asking, templates, and reading environments."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from afterparty.backends.url import redact
from afterparty.config import Settings
from afterparty.errors import AfterpartyError
from afterparty.printing import for_command
from afterparty.report import TaskStatus
from afterparty.states import State
from afterparty.web.auth import Authenticator, User, csrf_token
from afterparty.web.config import WebConfig
from afterparty.web.environments import EnvironmentStatus, read_environment

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")
# How often a page showing something under way reads itself again.
REFRESH_SECONDS = 3
T = TypeVar("T")
Page = Callable[[Request, User], Awaitable[Response]]


class Console:
    """What every page and action of one console app shares."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.auth = Authenticator(config)
        self.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                            autoescape=True, trim_blocks=True, lstrip_blocks=True)
        self.templates.filters["progress"] = progress_text
        # The pages name states as states.py does, never by their stored words.
        self.templates.globals["State"] = State
        self.templates.globals["reason"] = self.reason
        root = next(iter(config.environments.values())).project_root
        self.templates.filters["in_project"] = partial(in_project, root)
        self._reads = EnvironmentReads(config)

    def settings_of(self, environment: str) -> Settings | None:
        return self.config.environments.get(environment)

    def reason(self, row: TaskStatus, environment: str) -> str | None:
        """Why a task is where it is, in words that fit a page: a human step awaits the form
        below it (not a command), and a hint names the command as this environment is run."""
        if row.state == State.AWAITING.value:
            return "awaits confirmation by a person"
        settings = self.settings_of(environment)
        if row.reason is None or settings is None:
            return row.reason
        return for_command(row.reason, settings.command)

    async def read_environments(self, overview: bool = False) -> list[EnvironmentStatus]:
        """Every environment, read side by side, each within the deadline: a slow or unreachable
        database holds up no other environment and no page for longer than the deadline. With
        ``overview``, only the rows the overview lists (environments.read_environment)."""
        return list(await asyncio.gather(*(self._read_within_deadline(name, overview)
                                           for name in self.config.environments)))

    async def _read_within_deadline(self, name: str, overview: bool) -> EnvironmentStatus:
        """One environment's read, or, past the deadline, what was last read of it (or only
        that it has not answered): the read goes on, and the next page shows what it found."""
        reading = self._reads.read(name, overview)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(reading)),
                                          self.config.deadline)
        except asyncio.TimeoutError:
            return self._reads.late(name, overview, self.config.deadline,
                                    self.config.database_of(name))

    async def within_deadline(self, read: Callable[..., T], *args: Any) -> tuple[T | None, str | None]:
        """``read(*args)`` on a thread, and what it found, or why it found nothing (a database
        error, or no answer within the deadline: the read is left to end on its own)."""
        try:
            return await asyncio.wait_for(run_in_threadpool(read, *args), self.config.deadline), None
        except asyncio.TimeoutError:
            return None, f"no answer within {self.config.deadline:g} s"
        except AfterpartyError as exc:
            return None, redact(str(exc))

    def render(self, request: Request, template: str, user: User | None, status_code: int = 200,
               moving: bool = False, **context: Any) -> HTMLResponse:
        """A page; ``moving``: it shows something under way, and follows it (console.js)."""
        root = request.scope.get("root_path", "")
        page = self.templates.get_template(template).render(
            root=root, user=user, auth=self.config.auth_enabled,
            refresh=REFRESH_SECONDS if moving else None,
            csrf_token=csrf_token(request, self.config.secret),
            flash=request.session.pop("flash", None), path=request.url.path, **context)
        return HTMLResponse(page, status_code=status_code)

    def refuse(self, request: Request, user: User | None, status_code: int, message: str) -> HTMLResponse:
        return self.render(request, "refused.html", user, status_code, message=message)

    def to_login(self, request: Request) -> RedirectResponse:
        root = request.scope.get("root_path", "")
        wanted = request.url.path[len(root):] if request.url.path.startswith(root) else "/"
        if request.url.query:
            wanted += "?" + request.url.query
        return RedirectResponse(f"{root}/login?next={quote(wanted, safe='/')}", status_code=303)

    def page(self, handler: Page) -> Callable[[Request], Awaitable[Response]]:
        """A handler for people who signed in; the others are sent to the login form."""
        async def endpoint(request: Request) -> Response:
            user = self.auth.user(request)
            if user is None:
                return self.to_login(request)
            return await handler(request, user)
        return endpoint


class EnvironmentReads:
    """The reads of environments under way, one at most per environment (a page asking while
    one is under way waits for that one: an unreachable database never ties up a thread per
    page), and what each last found. An overview's read (some rows) serves the overview only:
    a page that needs every row waits for it to end, then reads again."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self._threads = ThreadPoolExecutor(max_workers=len(config.environments),
                                           thread_name_prefix="afterparty-web-read")
        # Each environment's read under way, and whether it reads the overview's rows only.
        self._under_way: dict[str, tuple[Future[EnvironmentStatus], bool]] = {}
        self._last: dict[tuple[str, bool], tuple[datetime, EnvironmentStatus]] = {}
        self._guard = threading.Lock()
        _import_backends(config)

    def read(self, name: str, overview: bool) -> Future[EnvironmentStatus]:
        """The read of ``name`` under way (if it reads what is asked), or a new one, started
        once the one under way ends."""
        with self._guard:
            reading, for_overview = self._under_way.get(name, (None, False))
            if reading is not None and not reading.done() and (overview or not for_overview):
                return reading
            after: Future[EnvironmentStatus] = Future()
            self._under_way[name] = (after, overview)
        if reading is None or reading.done():
            self._start(name, overview, after)
        else:
            reading.add_done_callback(lambda _: self._start(name, overview, after))
        return after

    def _start(self, name: str, overview: bool, result: Future[EnvironmentStatus]) -> None:
        def settle(reading: Future[EnvironmentStatus]) -> None:
            error = reading.exception()
            if error is None:
                result.set_result(reading.result())
            else:
                result.set_exception(error)

        self._threads.submit(self._read, name, overview).add_done_callback(settle)

    def _read(self, name: str, overview: bool) -> EnvironmentStatus:
        status = read_environment(self.config, name, overview)
        with self._guard:
            self._last[name, overview] = (datetime.now(timezone.utc), status)
        return status

    def late(self, name: str, overview: bool, deadline: float, database: str) -> EnvironmentStatus:
        """What a page shows of an environment that has not answered within ``deadline``."""
        with self._guard:
            last = self._last.get((name, overview))
        slow = f"no answer within {deadline:g} s"
        if last is None:
            return EnvironmentStatus(name, database, error=f"{slow}: its database is slow or "
                                     "unreachable; this page shows it once it answers")
        read_at, status = last
        return replace(status, late=f"{slow}: as read at {read_at:%H:%M:%S} UTC")


def progress_text(row: TaskStatus) -> str | None:
    """A long task's last report in a few words, as ``status`` prints it; None without one."""
    if row.progress is None:
        return None
    from afterparty.printing import describe_progress

    return describe_progress(row.progress, running=row.state == State.RUNNING and not row.gone)


def in_project(root: str, path: str) -> str:
    """A task file's path as the project's people name it: relative to the project's root."""
    inside = os.path.relpath(path, root)
    return path if inside.startswith("..") else inside


def _import_backends(config: WebConfig) -> None:
    """Import each environment's backend module now, in one thread, not in two reading threads
    at the same moment: under an import hook that parses source (pytest's assertion rewriting),
    CPython 3.11 may fail that ("AST constructor recursion depth mismatch"). A URL that cannot
    be read is left to the read, which reports it."""
    from afterparty.backends import dialect_for
    from afterparty.backends.url import parse_url

    for settings in config.environments.values():
        with contextlib.suppress(AfterpartyError):
            dialect_for(parse_url(settings.database_url).backend)
