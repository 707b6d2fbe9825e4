"""Parses database URLs and opens the backend module that speaks to that database."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from afterparty.errors import ConfigError

if TYPE_CHECKING:
    from afterparty.backends.base import Backend

# URL scheme (SQLAlchemy's spelling) -> backend module; one line per database.
SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+pymysql": "mysql",
    "mariadb+pymysql": "mysql",
}


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL; ``redacted`` is the only form ever printed."""

    backend: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str = ""
    query: dict[str, str] = field(default_factory=dict)
    redacted: str = ""

    @property
    def where(self) -> str:
        """Host and port (or file) for messages, never the password."""
        if self.backend == "sqlite":
            return self.database
        return f"{self.host or 'localhost'}:{self.port}" if self.port else (self.host or "localhost")


def parse_url(url: str) -> DatabaseURL:
    """Parse a SQLAlchemy-style database URL; raises ConfigError saying what to fix."""
    scheme, sep, rest = url.partition("://")
    backend = SCHEMES.get(scheme.lower())
    if not sep or backend is None:
        known = ", ".join(sorted(f"{s}://" for s in SCHEMES))
        raise ConfigError(f"cannot use database URL {_redact_raw(url)!r}: scheme must be one of {known}")
    if backend == "sqlite":
        return _parse_sqlite(url, rest)
    return _parse_server(url, backend)


def _parse_sqlite(url: str, rest: str) -> DatabaseURL:
    path = rest[1:] if rest.startswith("/") else rest
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        raise ConfigError(
            f"database URL {url!r} names no file: an in-memory database forgets what ran; "
            "use sqlite:///relative.db or sqlite:////absolute/path.db"
        )
    return DatabaseURL(backend="sqlite", database=path, redacted=url)


def _parse_server(url: str, backend: str) -> DatabaseURL:
    from urllib.parse import parse_qsl, unquote, urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"database URL {_redact_raw(url)!r} has a port that is not a number") from None
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigError(
            f"database URL {_redact_raw(url)!r} names no database: add it after the host, "
            f"as in {parts.scheme}://user@host/dbname"
        )
    return DatabaseURL(
        backend=backend,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        host=parts.hostname,
        port=port,
        database=database,
        query=dict(parse_qsl(parts.query)),
        redacted=_redact_raw(url),
    )


def _redact_raw(url: str) -> str:
    """Hide the password of a URL even when the URL cannot be parsed."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{userinfo}{at}{hostport}{slash}{tail}"


def open_backend(url: DatabaseURL, connect_timeout: float = 30.0) -> Backend:
    """Import the backend for a URL (and so its driver, only now) and connect."""
    backend: Backend = backend_class(url.backend)(url, connect_timeout)
    backend.connect()
    return backend


def backend_class(name: str) -> type[Backend]:
    """The backend of a database by the name a URL scheme or a framework gives it."""
    module = SCHEMES.get(name.lower())
    if module is None:
        raise ConfigError(
            f"afterparty cannot keep records in a {name} database: use SQLite, PostgreSQL "
            "or MySQL/MariaDB"
        )
    backend: type[Backend] = importlib.import_module(f"afterparty.backends.{module}").BACKEND
    return backend
