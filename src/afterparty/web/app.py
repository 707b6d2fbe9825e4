"""The console as an ASGI application: its routes, the host names it answers to, its session
cookie and its security headers."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from functools import partial

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from afterparty.web import actions, api, login, pages
from afterparty.web.auth import User
from afterparty.web.config import WebConfig
from afterparty.web.console import Console
from afterparty.web.sessions import SessionCookie, console_identity

STATIC = os.path.join(os.path.dirname(__file__), "static")
# The console's own script and styles only: no inline script, no other source.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; connect-src 'self'; "
                                 b"style-src 'self'; img-src 'self'; form-action 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


def create_app(config: WebConfig | None = None) -> Starlette:
    """The console; without ``config``, the settings of the working directory and the
    AFTERPARTY_WEB_* variables (authentication required). Mount it into an ASGI application
    as ``Mount("/afterparty", app=create_app())``."""
    if config is None:
        from afterparty.config import load_settings

        config = WebConfig.load(load_settings())
    console = Console(config)

    def page(handler: Callable[[Console, Request, User], Awaitable[Response]]
             ) -> Callable[[Request], Awaitable[Response]]:
        return console.page(partial(handler, console))

    def action(name: str) -> Callable[[Request], Awaitable[Response]]:
        return console.page(partial(actions.take_decision, console, action=name))

    task = "/env/{environment}/tasks/{version}"
    routes = [
        Route("/", page(pages.overview)),
        Route("/matrix", page(pages.task_matrix)),
        Route("/history", page(pages.history)),
        Route("/env/{environment}/releases", page(pages.releases)),
        Route("/env/{environment}/releases/{release}", page(pages.releases)),
        Route(task, page(pages.task_page)),
        *(Route(f"{task}/{name}", action(name), methods=["POST"]) for name in actions.ACTIONS),
        Route("/login", partial(login.login_form, console)),
        Route("/login", partial(login.log_in, console), methods=["POST"]),
        Route("/logout", partial(login.log_out, console), methods=["POST"]),
        Route("/api/v1/status", partial(api.status, console)),
        Route("/static/console.css", partial(static_file, "console.css", "text/css")),
        Route("/static/console.js", partial(static_file, "console.js", "text/javascript")),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(AllowedHosts, allowed=config.allowed_hosts),
        Middleware(SessionCookie, secret=config.secret, identity=console_identity(config),
                   secure=config.secure_cookie),
    ]
    return Starlette(routes=routes, middleware=middleware)


async def static_file(name: str, media_type: str, request: Request) -> Response:
    with open(os.path.join(STATIC, name), "rb") as fh:
        content = fh.read()
    return Response(content, media_type=media_type,
                    headers={"cache-control": "public, max-age=3600"})


# A Host header: a name or an [IPv6] literal, then an optional port (Django's pattern).
_HOST = re.compile(r"([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(:[0-9]+)?")


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """Whether a request's Host header names this console (``allowed``: see WebConfig)."""
    parsed = _HOST.fullmatch(host.lower())
    if parsed is None:
        return False
    name = parsed.group(1).rstrip(".")
    return "*" in allowed or name in allowed or any(
        pattern.startswith(".") and (name == pattern[1:] or name.endswith(pattern))
        for pattern in allowed)


class AllowedHosts:
    """Answers 400 to a request for any other host name: a page whose name was rebound to the
    console's address must not drive it."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if not host_allowed(host, self.allowed):
                refused = PlainTextResponse("this console does not answer to that host name "
                                            "(allowed_hosts)", status_code=400)
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Adds the security headers to every response: no framing, no script but the console's
    own, no outside sources."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in SECURITY_HEADERS if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
