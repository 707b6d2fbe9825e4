"""Who is asking: htpasswd users signing in, the login throttle, a trusted proxy's header, the
read-only role, and the CSRF token every form carries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from afterparty.web.config import WebConfig
from afterparty.web.htpasswd import MAX_PASSWORD_BYTES, Htpasswd
from afterparty.web.sessions import SessionStore

log = logging.getLogger("afterparty.web")

# Longer names are refused before they are looked at, kept or logged (Django's limit).
MAX_NAME_LENGTH = 150


def normal_name(name: str) -> str:
    """A user name as sign-in takes it (from the form, HTTP Basic or the proxy's header)."""
    return name.strip()


@dataclass(frozen=True)
class User:
    """The person a request comes from, and whether they may only look."""

    name: str
    read_only: bool

    @property
    def signature(self) -> str:
        """How their decisions are recorded: the name, and where they took them."""
        return f"{self.name} (via web)"


class LoginThrottle:
    """At most ``limit`` failed logins per ``window`` seconds for one name from one address.
    Counted by (address, name): one address never locks another out, and a person's successful
    login clears nothing another address did. At most ``max_entries`` pairs are kept, the least
    recently failed going first, each with at most ``limit`` times."""

    def __init__(self, limit: int = 5, window: float = 300.0, max_entries: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_entries = max_entries
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._guard = threading.Lock()

    def __len__(self) -> int:
        return len(self._failures)

    def wait_needed(self, address: str, name: str) -> float:
        """Seconds until ``name`` may be tried again from ``address`` (0: now)."""
        now = time.monotonic()
        with self._guard:
            failures = self._failures.get((address, name))
            if failures is None or len(failures) < self.limit:
                return 0.0
            return max(0.0, failures[0] + self.window - now)

    def failed(self, address: str, name: str) -> None:
        key = (address, name)
        with self._guard:
            failures = self._failures.pop(key, None) or deque(maxlen=self.limit)
            failures.append(time.monotonic())
            self._failures[key] = failures
            while len(self._failures) > self.max_entries:
                self._failures.popitem(last=False)

    def succeeded(self, address: str, name: str) -> None:
        with self._guard:
            self._failures.pop((address, name), None)


class Authenticator:
    """Finds the user of a request: the signed session, a trusted proxy's header, HTTP Basic
    (for the API), or the one local user of ``--no-auth``."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.htpasswd = Htpasswd(config.htpasswd) if config.htpasswd else None
        self.throttle = LoginThrottle()
        self.sessions = SessionStore()
        self.read_only = frozenset(normal_name(name).casefold() for name in config.read_only)

    def user(self, conn: HTTPConnection, basic: bool = False) -> User | None:
        config = self.config
        if config.anonymous_user is not None:
            return User(config.anonymous_user, read_only=False)
        name = self._from_proxy(conn) or self._from_session(conn)
        if name is None and basic:
            name = self._from_basic(conn)
        return User(name, read_only=normal_name(name).casefold() in self.read_only) if name else None

    def _from_proxy(self, conn: HTTPConnection) -> str | None:
        header = self.config.proxy_user_header
        if header is None or conn.client is None or conn.client.host not in self.config.trusted_proxies:
            return None
        return normal_name(conn.headers.get(header, "")) or None

    def _from_session(self, conn: HTTPConnection) -> str | None:
        session_id = conn.session.get("sid")
        if not isinstance(session_id, str):
            return None
        return self.sessions.user(session_id, self._credential)

    def _credential(self, name: str) -> bytes | None:
        """The user's hash in the htpasswd file now: a session started with another one (the
        password changed, the name was taken out) has ended."""
        return self.htpasswd.hashes().get(name) if self.htpasswd else None

    def start_session(self, conn: HTTPConnection, name: str) -> None:
        """Sign ``name`` in: a new session id, so that one set before (by anyone) is not kept."""
        conn.session.clear()
        conn.session["sid"] = self.sessions.start(name, self._credential(name))

    def end_session(self, conn: HTTPConnection) -> None:
        """Sign out: the session ends here, so a copy of its cookie no longer signs anyone in."""
        session_id = conn.session.get("sid")
        if isinstance(session_id, str):
            self.sessions.end(session_id)
        conn.session.clear()

    def _from_basic(self, conn: HTTPConnection) -> str | None:
        scheme, _, encoded = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or self.htpasswd is None:
            return None
        try:
            name, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        name = normal_name(name)
        return name if self.log_in(name, password, self.client_address(conn)) is None else None

    def client_address(self, conn: HTTPConnection) -> str:
        """Where a request comes from, for the login throttle and the log: the peer, or behind
        trusted proxies the last address of X-Forwarded-For that is not one of them."""
        peer = conn.client.host if conn.client else "unknown"
        if peer not in self.config.trusted_proxies:
            return peer
        for hop in reversed(conn.headers.get("x-forwarded-for", "").split(",")):
            hop = hop.strip()
            if hop not in self.config.trusted_proxies:
                return hop if _is_address(hop) else peer
        return peer

    def log_in(self, name: str, password: str, address: str) -> str | None:
        """None when the name and password are right; else why not, for the person."""
        if len(name) > MAX_NAME_LENGTH:  # no user has such a name: refused before anything
            log.warning("failed login for a name of %d characters (%r...) from %s", len(name),
                        name[:32], address)
            return "wrong name or password"
        if len(password.encode()) > MAX_PASSWORD_BYTES:
            return (f"this password is longer than {MAX_PASSWORD_BYTES} bytes, which bcrypt cannot "
                    "check: no console password is that long")
        wait = self.throttle.wait_needed(address, name)
        if wait > 0:
            log.warning("login refused for %r from %s: too many failed logins", name, address)
            return f"too many failed logins: try again in {int(wait) + 1} s"
        if self.htpasswd is not None and self.htpasswd.check(name, password):
            self.throttle.succeeded(address, name)
            return None
        self.throttle.failed(address, name)
        log.warning("failed login for %r from %s", name, address)
        return "wrong name or password"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def csrf_token(conn: HTTPConnection, secret: str) -> str:
    """The token this browser's forms carry: tied to its session, which gets an id the first
    time it is needed."""
    session_id = conn.session.get("sid")
    if not isinstance(session_id, str):
        session_id = conn.session["sid"] = secrets.token_urlsafe(16)
    return _token(secret, session_id)


def csrf_valid(conn: HTTPConnection, secret: str, given: object) -> bool:
    session_id = conn.session.get("sid")
    return (isinstance(session_id, str) and isinstance(given, str)
            and hmac.compare_digest(_token(secret, session_id), given))


def _token(secret: str, session_id: str) -> str:
    return hmac.new(secret.encode(), f"csrf:{session_id}".encode(), hashlib.sha256).hexdigest()
