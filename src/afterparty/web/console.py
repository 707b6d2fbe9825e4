"""The console's shared parts: its settings, who is asking, templates, and reading environments."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from afterparty.config import Settings
from afterparty.report import TaskStatus
from afterparty.states import State
from afterparty.web.auth import Authenticator, User, csrf_token
from afterparty.web.config import WebConfig
from afterparty.web.environments import EnvironmentStatus, read_environment

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")
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
        root = next(iter(config.environments.values())).project_root
        self.templates.filters["in_project"] = partial(in_project, root)

    def settings_of(self, environment: str) -> Settings | None:
        return self.config.environments.get(environment)

    async def read_environments(self) -> list[EnvironmentStatus]:
        """Every environment, read side by side: one unreachable database delays the page by its
        connect timeout, not by one timeout per environment."""
        timeout = self.config.connect_timeout
        return list(await asyncio.gather(*(
            run_in_threadpool(read_environment, name, settings, timeout)
            for name, settings in self.config.environments.items())))

    def render(self, request: Request, template: str, user: User | None, status_code: int = 200,
               **context: Any) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = self.templates.get_template(template).render(
            root=root, user=user, auth=self.config.auth_enabled,
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
