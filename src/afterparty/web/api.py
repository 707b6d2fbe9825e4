"""``GET /api/v1/status``: the ``status --json`` shape of every environment, for dashboards."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from afterparty.report import SCHEMA, StatusReport
from afterparty.web.console import Console


async def status(console: Console, request: Request) -> Response:
    """Signed-in browsers, a trusted proxy, or HTTP Basic with an htpasswd user."""
    # HTTP Basic checks a bcrypt hash, which takes a moment on purpose: not on the event loop.
    if await run_in_threadpool(console.auth.user, request, True) is None:
        return JSONResponse({"error": "sign in: a session cookie or HTTP Basic with a console user"},
                            status_code=401, headers={"WWW-Authenticate": 'Basic realm="afterparty"'})
    environments = []
    for environment in await console.read_environments():
        if environment.error is not None:
            environments.append({"schema": SCHEMA, "environment": environment.name,
                                 "database": environment.database, "error": environment.error})
            continue
        report = StatusReport(environment.name, environment.database, environment.rows,
                              environment.problems).as_dict()
        if environment.late is not None:  # an earlier read: this one did not answer in time
            report["late"] = environment.late
        environments.append(report)
    return JSONResponse({"schema": SCHEMA, "environments": environments})
