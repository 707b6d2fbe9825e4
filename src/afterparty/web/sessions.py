"""The console's sessions: a cookie signed for this console only and sent back to its own path,
carrying an id; the signed-in ids kept in the console's process, so that signing out, a changed
password and the idle and absolute lifetimes end them."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import itsdangerous
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.sessions import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from afterparty.web.config import WebConfig

COOKIE = "afterparty_console"
IDLE_SECONDS = 30 * 60
LIFETIME_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000
# What the console writes in its cookie; a cookie holding anything else is not one of its own.
_FIELDS = {"sid": str, "flash": str}


@dataclass
class SignedIn:
    """One signed-in session: whose, with which password hash, since when, last seen when."""

    user: str
    credential: bytes | None
    started: float
    last_seen: float


class SessionStore:
    """The signed-in sessions of this console, by id, in its process: a restart signs everyone
    out. At most ``limit`` are kept; beyond, the least recently used goes."""

    def __init__(self, idle: float = IDLE_SECONDS, lifetime: float = LIFETIME_SECONDS,
                 limit: int = MAX_SESSIONS, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self.limit = limit
        self.clock = clock
        self._sessions: OrderedDict[str, SignedIn] = OrderedDict()
        self._guard = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def start(self, user: str, credential: bytes | None) -> str:
        """A new session for ``user``, who signed in with the password of hash ``credential``."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        with self._guard:
            self._sessions[session_id] = SignedIn(user, credential, now, now)
            while len(self._sessions) > self.limit:
                self._sessions.popitem(last=False)
        return session_id

    def user(self, session_id: str, credential_of: Callable[[str], bytes | None]) -> str | None:
        """Whose session this is; None (and it ends) when it is unknown, idle or old, or its
        user's password hash is no longer the one they signed in with."""
        now = self.clock()
        with self._guard:
            found = self._sessions.get(session_id)
            if found is None:
                return None
            if (now - found.last_seen > self.idle or now - found.started > self.lifetime
                    or credential_of(found.user) != found.credential):
                del self._sessions[session_id]
                return None
            found.last_seen = now
            self._sessions.move_to_end(session_id)
            return found.user

    def end(self, session_id: str) -> None:
        with self._guard:
            self._sessions.pop(session_id, None)


def console_identity(config: WebConfig) -> str:
    """What tells this console from another one sharing its secret: its environments, users and
    proxy. Cookies are signed for it, so another console refuses them."""
    described = json.dumps([
        sorted((name, s.database_url, s.table_prefix, s.tasks_dir)
               for name, s in config.environments.items()),
        config.htpasswd, config.proxy_user_header, sorted(config.trusted_proxies),
        config.anonymous_user,
    ])
    return hashlib.sha256(described.encode()).hexdigest()


def cookie_serializer(secret: str, identity: str) -> itsdangerous.URLSafeTimedSerializer:
    """How the console signs its cookie: with the secret, salted with the console's identity."""
    return itsdangerous.URLSafeTimedSerializer(secret, salt=f"afterparty console {identity}")


class SessionCookie:
    """``request.session`` for the console, kept in its cookie: ``HttpOnly``, ``SameSite=Lax``,
    ``Secure`` when asked, for the console's own path (its mount point). A cookie that is not
    one this console wrote (another signature, other fields, too old) counts as none."""

    def __init__(self, app: ASGIApp, secret: str, identity: str, secure: bool) -> None:
        self.app = app
        self.serializer = cookie_serializer(secret, identity)
        self.flags = "HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A browser may send several cookies of this name (another console's, or one set for
        # another path): the first one this console wrote counts.
        read = next((data for data in map(self._read, _cookies_named(scope, COOKIE)) if data), None)
        scope["session"] = Session(read or {})
        path = scope.get("root_path") or "/"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                session: Session = scope["session"]
                headers = MutableHeaders(scope=message)
                if session.modified and session:
                    value = self.serializer.dumps(dict(session))
                    headers.append("set-cookie", f"{COOKIE}={value}; Path={path}; "
                                                 f"Max-Age={LIFETIME_SECONDS}; {self.flags}")
                elif session.modified and read is not None:
                    headers.append("set-cookie", f"{COOKIE}=; Path={path}; Max-Age=0; {self.flags}")
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _read(self, cookie: str) -> dict[str, Any] | None:
        try:
            data = self.serializer.loads(cookie, max_age=LIFETIME_SECONDS)
        except itsdangerous.BadData:
            return None
        if (not isinstance(data, dict) or not isinstance(data.get("sid"), str)
                or any(key not in _FIELDS or not isinstance(value, _FIELDS[key])
                       for key, value in data.items())):
            return None
        return data


def _cookies_named(scope: Scope, name: str) -> list[str]:
    """The values of every cookie called ``name`` in the request, in the order sent."""
    sent = "; ".join(Headers(scope=scope).getlist("cookie"))
    pairs = (part.strip().partition("=") for part in sent.split(";"))
    return [value for key, _, value in pairs if key == name and value]
