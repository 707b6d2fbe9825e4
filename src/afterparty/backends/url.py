"""Database URLs: parsing them into a DatabaseURL, and hiding every password in whatever is printed."""

from __future__ import annotations

import functools
import re

from afterparty.errors import ConfigError
from afterparty.tuples import NamedTuple

# URL scheme (SQLAlchemy's spelling, driver part included) -> backend module. afterparty always
# talks through its own driver (sqlite3, psycopg 3, PyMySQL): the driver part only names the database.
SCHEMES: dict[str, str] = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "sqlite+aiosqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg": "postgresql",
    "postgresql+psycopg2": "postgresql",
    "postgresql+asyncpg": "postgresql",
    "postgresql+pg8000": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+pymysql": "mysql",
    "mariadb+pymysql": "mysql",
    "mysql+mysqldb": "mysql",
    "mariadb+mysqldb": "mysql",
    "mysql+mysqlconnector": "mysql",
    "mysql+aiomysql": "mysql",
    "mysql+asyncmy": "mysql",
}

_USE = (
    "use sqlite:///file.db, postgresql://user:password@host/dbname or mysql://user:password@host/dbname"
)
_SQLITE_FILE = "use sqlite:///relative.db or sqlite:////absolute/path.db"
_PERCENT_ENCODE = "in the password and the database name write '@' as %40, '/' as %2F and '?' as %3F"
# What redact() and redact_url() return in the (never expected) case they fail: never the input.
_UNCHECKED = "<text hidden: it could not be checked for passwords>"
# More '@' than this and a URL is not worth reading every way it could be split.
_MAX_AT = 64

# A scheme: a letter, then letters, digits, '+', '.' or '-' (checked without a pattern).
_SCHEME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
# password=..., PGPASSWORD=..., 'password': '...', "passwd": "..." (libpq, query strings, dict reprs).
_SECRET_NAME = r"[\w\-]*(?:password|passwd|passphrase|pwd)"

# The patterns are compiled on first use: a deploy's no-op run needs none of them.


def _is_scheme(text: str) -> bool:
    return bool(text) and text[0].isascii() and text[0].isalpha() and set(text) <= _SCHEME_CHARACTERS


@functools.cache
def _space() -> re.Pattern[str]:
    return re.compile(r"\s")


@functools.cache
def _newline() -> re.Pattern[str]:
    return re.compile(r"[\r\n]")


@functools.cache
def _userinfo() -> re.Pattern[str]:
    """The userinfo before an '@': the user name runs to the first ':'; the password is the rest."""
    return re.compile(r"(?P<username>[^:/?]*)(?::(?P<password>.*))?", re.S)


@functools.cache
def _hostpart() -> re.Pattern[str]:
    """What follows the userinfo: host or [ipv6], :port, /database, ?query (as make_url)."""
    return re.compile(
        r"""
        (?: \[ (?P<ipv6> [^\]/?@]* ) \] | (?P<host> [^\[\]/?@:]* ) )
        (?: : (?P<port> [^/?@]* ) )?
        (?: / (?P<database> [^?]* ) )?
        (?: \? (?P<query> .* ) )?
        """,
        re.X | re.S,
    )


@functools.cache
def _url_head() -> re.Pattern[str]:
    """In free text: the start of a URL up to the ':' that opens its password (any scheme)."""
    return re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z0-9+.\-]*://[^\s:/?#]*:")


@functools.cache
def _key_value() -> re.Pattern[str]:
    """A secret as ``key=value`` or ``'key': 'value'``."""
    return re.compile(
        rf"""
        (?<![\w\-]) (?P<quote>['"]?) (?P<key>{_SECRET_NAME}) (?P=quote)
        (?: \s*=\s* | (?<=['"]) \s*:\s* )
        (?P<value>
            '(?:[^'\\\r\n]|\\.)*'?          # quoted, as libpq and Python write it
          | "(?:[^"\\\r\n]|\\.)*"?
          | (?:[^\s&]|&(?![\w.\-]+=))*      # bare: up to a space or the next &key=
        )
        """,
        re.X | re.I,
    )


@functools.cache
def _secret_key() -> re.Pattern[str]:
    return re.compile(_SECRET_NAME, re.I)


class DatabaseURL:
    """A parsed database URL; ``redacted`` (also its ``str()``) is the only form ever printed.
    (Not a dataclass: parsing the URL is on the no-op path, and dataclasses costs it more than
    the parsing.)"""

    __slots__ = ("backend", "database", "host", "password", "port", "query", "redacted", "username")
    _COMPARED = ("backend", "username", "password", "host", "port", "database", "redacted")

    def __init__(self, backend: str, username: str | None = None, password: str | None = None,
                 host: str | None = None, port: int | None = None, database: str = "",
                 query: dict[str, str] | None = None, redacted: str = "") -> None:
        self.backend = backend
        self.username = username
        self.password = password
        self.host = host
        self.port = port
        self.database = database
        # As given, a ``password`` key included: handed to the driver, never printed.
        self.query: dict[str, str] = {} if query is None else query
        self.redacted = redacted

    def _compared(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._COMPARED)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DatabaseURL) and self._compared() == other._compared()
                and self.query == other.query)

    def __hash__(self) -> int:
        return hash(self._compared())

    def __repr__(self) -> str:
        return (f"DatabaseURL(backend={self.backend!r}, username={self.username!r}, "
                f"host={self.host!r}, port={self.port!r}, database={self.database!r}, "
                f"redacted={self.redacted!r})")

    @property
    def where(self) -> str:
        """Host and port, the socket, or the SQLite file, for messages; never the password."""
        if self.backend == "sqlite":
            return self.database
        host = self.host
        if not host:
            socket = self.query.get("host") or self.query.get("unix_socket")
            if socket:
                return socket
            host = "localhost"
        if not self.port:
            return host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.redacted or self.where


def parse_url(url: str, source: str | None = None) -> DatabaseURL:
    """Parse a SQLAlchemy-style database URL; raises ConfigError with one line saying what to fix.

    ``source`` names where the URL came from (``DATABASE_URL``, ``--database-url``, ...); every
    error says ``(from SOURCE)``. Surrounding whitespace (a trailing newline from a secret file)
    is ignored.
    """
    text = url.strip()
    if not text:
        raise _error(text, source, f"it is empty; {_USE}")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise _error(text, source, f"it has no '://' after the name of the database; {_USE}")
    if not _is_scheme(scheme):
        raise _error(text, source, f"it does not start with the name of a database; {_USE}")
    backend = SCHEMES.get(scheme.lower())
    if backend is None:
        raise _error(text, source, f"afterparty does not know the scheme {scheme + '://'!r}; {_USE}")
    if backend == "sqlite":
        return _parse_sqlite(text, rest, source)
    return _parse_server(text, scheme, backend, rest, source)


def redact(text: str) -> str:
    """Hide every password in free text (driver errors, tracebacks): URLs and ``password=`` pairs.

    ``scheme://user:secret@host`` becomes ``scheme://user:***@host`` (the secret may hold
    ``/ # ? :``; it runs to the last ``@`` before a space, or else to the next ``@`` on the
    line), and ``password=secret`` (query strings, libpq, ``PGPASSWORD=``, ``'password': ...``)
    becomes ``password=***``. When unsure it hides too much rather than too little.
    Never raises.
    """
    try:
        return _hide_key_values(_hide_url_passwords(_as_text(text)))
    except Exception:
        return _UNCHECKED


def redact_url(url: str) -> str:
    """The one URL ``url`` with its password hidden, even when it does not parse. Never raises."""
    try:
        return _redact_url(_as_text(url))
    except Exception:
        return _UNCHECKED


# ---------------------------------------------------------------------------------------------
# Parsing


class _Split(NamedTuple):
    """One way to read what follows ``scheme://``; offsets index that text."""

    at: int  # the '@' ending the userinfo, -1 when there is none
    username: str | None
    password: tuple[int, int] | None  # span of the raw password
    host: str
    port: str | None
    port_span: tuple[int, int]
    database: str | None
    query: str | None
    query_start: int

    def port_problem(self) -> str | None:
        """What is wrong with the port ("not a number", "out of range"), or None."""
        if self.port is None:
            return None
        if not self.port.isascii() or not self.port.isdigit():
            return "not a number"
        return None if 1 <= int(self.port) <= 65535 else "out of range"

    def valid(self) -> bool:
        """A usable server URL: a port that is a port, and a database name.

        A raw '@' in the database name is taken for a sign the reading is wrong: it is then
        part of the password (``user:p@ss/word@host/db``), or must be written %40.
        """
        return self.port_problem() is None and bool(self.database) and "@" not in (self.database or "")


def _splits(rest: str) -> list[_Split]:
    """Every reading of ``rest`` as [user[:password]@]host[:port][/database][?query].

    One per '@' that could end the userinfo (a password may hold '@', '/', '?', '#', ':'), first
    '@' first, then the reading without userinfo.
    """
    found: list[_Split] = []
    at = rest.find("@")
    tries = 0
    while at >= 0 and tries < _MAX_AT:
        tries += 1
        user = _userinfo().fullmatch(rest, 0, at)
        if user is None:
            break  # the user name holds '/' or '?': so would any longer one
        hostpart = _hostpart().fullmatch(rest, at + 1)
        if hostpart is not None:
            found.append(_make_split(rest, at, user, hostpart))
        at = rest.find("@", at + 1)
    hostpart = _hostpart().fullmatch(rest)
    if hostpart is not None:
        found.append(_make_split(rest, -1, None, hostpart))
    return found


def _make_split(rest: str, at: int, user: re.Match[str] | None, hostpart: re.Match[str]) -> _Split:
    password = None
    if user is not None and user.group("password") is not None:
        password = user.span("password")
    return _Split(
        at=at,
        username=user.group("username") if user is not None else None,
        password=password,
        host=hostpart.group("ipv6") if hostpart.group("ipv6") is not None else hostpart.group("host"),
        port=hostpart.group("port"),
        port_span=hostpart.span("port"),
        database=hostpart.group("database"),
        query=hostpart.group("query"),
        query_start=hostpart.start("query"),
    )


def _parse_server(text: str, scheme: str, backend: str, rest: str, source: str | None) -> DatabaseURL:
    splits = _splits(rest)
    valid = [split for split in splits if split.valid()]
    example = f"{scheme}://user:password@host:port/dbname"
    if len(valid) > 1:
        raise _error(
            text, source,
            f"it can be read more than one way because of its '@' signs; {_PERCENT_ENCODE}",
        )
    if not valid:
        if not splits:
            raise _error(
                text, source,
                f"afterparty cannot make out its host; write it as {example} "
                "(an IPv6 address in brackets: [::1]:5432)",
            )
        # Report on the first reading with a database name: then what is left wrong is the port.
        first = next((split for split in splits if split.database and "@" not in split.database), splits[0])
        problem = first.port_problem()
        if problem is not None and first.at < 0 and first.port is not None:
            after = first.host + ":"
            raise _error(text, source, f"the text after {after!r} is not a port number; write {example}")
        if problem == "out of range":
            raise _error(text, source, f"the port {first.port} is out of range: use a number from 1 to 65535")
        if problem is not None:
            raise _error(
                text, source,
                f"the port {first.port!r} is not a number; write the port as digits, as in host:5432",
            )
        if first.database and "@" in first.database:
            raise _error(text, source, f"it is unclear where the password ends; {_PERCENT_ENCODE}")
        raise _error(text, source, f"it names no database; add its name after the host, as in {example}")

    split = valid[0]
    from urllib.parse import parse_qsl, unquote  # server URLs only: not on SQLite's no-op path

    query = dict(parse_qsl(split.query or ""))
    password = unquote(rest[slice(*split.password)]) if split.password is not None else None
    if not password and "password" in query:
        password = query["password"]
    return DatabaseURL(
        backend=backend,
        username=unquote(split.username) if split.username else None,
        password=password,
        host=split.host or None,
        port=int(split.port) if split.port is not None else None,
        database=unquote(split.database or ""),
        query=query,
        redacted=f"{scheme}://{_hide(rest, [split])}",
    )


def is_memory_database(name: str) -> bool:
    """Whether a SQLite database name (a path, or a URI's) is in memory: it forgets what ran."""
    return not name or name == ":memory:" or name.startswith("file::memory:") or "mode=memory" in name


def _parse_sqlite(text: str, rest: str, source: str | None) -> DatabaseURL:
    # sqlite:///rel.db -> "rel.db", sqlite:////abs/x.db -> "/abs/x.db"; no percent-decoding.
    path, _, query_string = (rest[1:] if rest.startswith("/") else rest).partition("?")
    query: dict[str, str] = {}
    if query_string:
        from urllib.parse import parse_qsl

        query = dict(parse_qsl(query_string))
    if not path:
        raise _error(
            text, source, f"it names no file, and an in-memory database would forget what ran; {_SQLITE_FILE}"
        )
    if is_memory_database(path) or query.get("mode") == "memory":
        raise _error(text, source, f"it names an in-memory database, which forgets what ran; {_SQLITE_FILE}")
    if not rest.startswith("/") and "@" in path:
        raise _error(text, source, f"SQLite takes no user, password or host; {_SQLITE_FILE}")
    # A path is a path ('@' and ':' included, C:/Users/me@corp/x.db): only query secrets are hidden.
    return DatabaseURL(backend="sqlite", database=path, query=query, redacted=_hide_key_values(text))


def _error(text: str, source: str | None, problem: str) -> ConfigError:
    """One line: which URL (redacted), where it came from, what is wrong and what to do."""
    origin = f" (from {_one_line(source)})" if source else ""
    return ConfigError(f"cannot use database URL {redact_url(text)!r}{origin}: {problem}")


def _one_line(text: str) -> str:
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


# ---------------------------------------------------------------------------------------------
# Redacting


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if sep and _is_scheme(scheme):
        splits = _splits(rest)
        valid = [split for split in splits if split.valid()]
        if len(valid) == 1:
            return f"{scheme}://{_hide(rest, valid)}"
        # Unusable or ambiguous: hide what any reading calls a password, then all up to the last '@'.
        return _hide_key_values(f"{scheme}://{_hide_to_last_at(_hide(rest, splits))}")
    return _hide_key_values(_hide_to_last_at(url))


def _hide_to_last_at(text: str) -> str:
    """Hide from the first ':' to the last '@': whatever ``user:password@host`` looks like."""
    at = text.rfind("@")
    colon = text.find(":", 0, at) if at > 0 else -1
    return f"{text[:colon + 1]}***{text[at:]}" if colon >= 0 else text


def _hide(rest: str, splits: list[_Split]) -> str:
    """``rest`` with what any of ``splits`` reads as a password (or a secret query value) hidden."""
    spans: list[tuple[int, int]] = []
    for split in splits:
        if split.password is not None and split.password[0] < split.password[1]:
            spans.append(split.password)
        if split.at < 0 and split.port_problem() == "not a number":
            spans.append(split.port_span)  # "user:secret/db" missing its @host: a password, maybe
        if split.query:
            offset = split.query_start
            for pair in split.query.split("&"):
                key, equals, value = pair.partition("=")
                if equals and value and _secret_key().fullmatch(_unquote(key.replace("+", " "))):
                    start = offset + len(key) + 1
                    spans.append((start, start + len(value)))
                offset += len(pair) + 1
    pieces: list[str] = []
    done = 0
    for start, end in sorted(spans):
        if start > done or not pieces:
            pieces.append(rest[done:start])
            pieces.append("***")
        done = max(done, end)  # overlapping readings: one "***" for them all
    pieces.append(rest[done:])
    return "".join(pieces)


def _hide_url_passwords(text: str) -> str:
    """Hide the password of every ``scheme://user:password@`` in free text, in one pass."""
    pieces: list[str] = []
    done = 0  # text[:done] is in pieces
    token_end = line_end = next_at = last_at_in_token = -1
    for head in _url_head().finditer(text):
        start = head.end()
        if head.start() < done:
            continue  # inside a password already hidden
        if start > token_end:
            space = _space().search(text, start)
            token_end = space.start() if space else len(text)
            last_at_in_token = text.rfind("@", start, token_end)
        if start > line_end:
            newline = _newline().search(text, start)
            line_end = newline.start() if newline else len(text)
        if next_at < start:
            next_at = text.find("@", start)
            if next_at < 0:
                next_at = len(text)
        if last_at_in_token >= start:
            end = last_at_in_token  # the password may hold '@': up to the last one of this word
        elif next_at < line_end:
            end = next_at  # a password with a space in it
        else:
            continue  # no '@' follows: host:port, not user:password
        pieces.append(text[done:start])
        pieces.append("***")
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def _hide_key_values(text: str) -> str:
    lowered = text.lower()
    if not any(word in lowered for word in ("password", "passwd", "passphrase", "pwd")):
        return text  # the common case, and no pattern to compile for it
    return _key_value().sub(lambda m: m.group(0)[: m.start("value") - m.start()] + "***", text)


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)
