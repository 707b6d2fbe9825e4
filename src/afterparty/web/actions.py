"""The decisions people take from the console: confirm, resolve and skip, through the same
code as the CLI's commands, recorded with the person's name "via web"."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from afterparty import decisions
from afterparty.backends.url import redact
from afterparty.decisions import Decision
from afterparty.errors import AfterpartyError, DatabaseError, LockBusyError, UsageError
from afterparty.session import Session
from afterparty.states import RESOLVE_ACTIONS, State
from afterparty.web.auth import User, csrf_valid
from afterparty.web.config import WebConfig
from afterparty.web.console import Console
from afterparty.web.pages import task_page

# What each action does with the session, the task, the note and the state the person saw.
Decide = Callable[[Session, str, str | None, State, FormData], list[Decision]]


def _refuse_to_wait(holder: str | None) -> None:
    """Called when the environment's lock is taken: a request never waits for a deploy (each
    waiting one would hold a worker thread until the deploy ends)."""
    raise LockBusyError("a deploy is running; decide when it ends"
                        + (f" (the lock is held by {holder})" if holder else ""))


def _confirm(session: Session, version: str, note: str | None, seen: State,
             form: FormData) -> list[Decision]:
    return decisions.confirm(session, version, note, on_wait=_refuse_to_wait, expected=seen)


def _resolve(session: Session, version: str, note: str | None, seen: State,
             form: FormData) -> list[Decision]:
    return decisions.resolve(session, version, str(form.get("choice", "")), note,
                             on_wait=_refuse_to_wait, expected=seen)


def _skip(session: Session, version: str, note: str | None, seen: State,
          form: FormData) -> list[Decision]:
    if not note:
        raise UsageError("say why it is skipped: the note is kept in the history")
    return decisions.skip(session, [version], note, on_wait=_refuse_to_wait, expected=seen)


def _pause(session: Session, version: str, note: str | None, seen: State,
           form: FormData) -> list[Decision]:
    return decisions.pause(session, version, note, expected=seen)  # a request: no lock to wait for


def _resume(session: Session, version: str, note: str | None, seen: State,
            form: FormData) -> list[Decision]:
    return decisions.resume(session, version, note, on_wait=_refuse_to_wait, expected=seen)


def _cancel(session: Session, version: str, note: str | None, seen: State,
            form: FormData) -> list[Decision]:
    return decisions.cancel(session, version, note, on_wait=_refuse_to_wait, expected=seen)


ACTIONS: dict[str, tuple[Decide, str]] = {
    "confirm": (_confirm, "confirmed"),
    "resolve": (_resolve, "resolved"),
    "skip": (_skip, "skipped"),
    "pause": (_pause, "asked to pause at its next batch"),
    "resume": (_resume, "resumed"),
    "cancel": (_cancel, "cancelled"),
}


async def take_decision(console: Console, request: Request, user: User, action: str) -> Response:
    """Check the form's token and the person's role, then decide under the lock; a refusal
    shows the task again with why, and changes nothing."""
    form = await request.form()
    if not csrf_valid(request, console.config.secret, form.get("csrf_token")):
        return console.refuse(request, user, 403, "this form's security token is missing or out of "
                              "date: nothing was changed. Reload the page and try again.")
    if user.read_only:
        return console.refuse(request, user, 403, f"{user.name} may look but not decide: "
                              "nothing was changed.")
    environment, version = request.path_params["environment"], request.path_params["version"]
    if console.settings_of(environment) is None:
        return console.refuse(request, user, 404, f"no environment named {environment!r} here")
    seen = str(form.get("expected", ""))
    if seen not in {state.value for state in State} or (
            action == "resolve" and form.get("choice") not in RESOLVE_ACTIONS):
        return console.refuse(request, user, 400, "this form is incomplete: nothing was changed")
    note = str(form.get("note", "")).strip() or None
    decide, verb = ACTIONS[action]
    try:
        made = await run_in_threadpool(_decide, console.config, environment, user, decide,
                                       version, note, State(seen), form)
    except DatabaseError as exc:
        return await task_page(console, request, user, redact(str(exc)), 503)
    except AfterpartyError as exc:
        return await task_page(console, request, user, redact(str(exc)), 409)
    request.session["flash"] = "; ".join(
        f"{d.version} {d.name} {verb}: {d.before} -> {d.after}" for d in made)
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/env/{quote(environment, safe='')}/tasks/{version}",
                            status_code=303)


def _decide(config: WebConfig, environment: str, user: User, decide: Decide, version: str,
            note: str | None, seen: State, form: FormData) -> list[Decision]:
    session = config.open_session(environment)
    try:
        session.act_as(user.signature)
        return decide(session, version, note, seen, form)
    finally:
        session.close()
