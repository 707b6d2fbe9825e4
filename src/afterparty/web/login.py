"""Signing in and out of the console."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from afterparty.web.auth import MAX_NAME_LENGTH, csrf_valid, normal_name
from afterparty.web.console import Console


def _next_page(request: Request, wanted: object) -> str:
    """Where to go after signing in: a path of this console only, never another site."""
    root = str(request.scope.get("root_path", ""))
    path = wanted if isinstance(wanted, str) else "/"
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        path = "/"
    return root + path


async def login_form(console: Console, request: Request) -> Response:
    return console.render(request, "login.html", None, next=request.query_params.get("next", "/"),
                          passwords=console.auth.htpasswd is not None)


async def log_in(console: Console, request: Request) -> Response:
    form = await request.form()
    wanted = form.get("next", "/")
    if not csrf_valid(request, console.config.secret, form.get("csrf_token")):
        return console.render(request, "login.html", None, 403, next=wanted, passwords=True,
                              error="this form was out of date: try again")
    name = normal_name(str(form.get("username", "")))
    password = str(form.get("password", ""))
    address = console.auth.client_address(request)
    # bcrypt takes a moment on purpose: not on the event loop.
    refused = await run_in_threadpool(console.auth.log_in, name, password, address)
    if refused is not None:
        status = 429 if refused.startswith("too many") else 401
        return console.render(request, "login.html", None, status, next=wanted, passwords=True,
                              error=refused, username=name[:MAX_NAME_LENGTH])
    console.auth.start_session(request, name)
    return RedirectResponse(_next_page(request, wanted), status_code=303)


async def log_out(console: Console, request: Request) -> Response:
    form = await request.form()
    if csrf_valid(request, console.config.secret, form.get("csrf_token")):
        console.auth.end_session(request)
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/login", status_code=303)
