"""What the console serves and who may use it: its environments, users, secret and proxy."""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from afterparty.backends.url import redact_url
from afterparty.config import Settings, read_pyproject_table
from afterparty.errors import ConfigError, UsageError
from afterparty.session import Session
from afterparty.web.htpasswd import bcrypt_cost, read_htpasswd

#: How a web framework opens an environment's records (its ``Framework.session``).
OpenSession = Callable[[Settings, float], Session]

WEB_KEYS = frozenset({"environments", "read_only", "proxy_user_header", "trusted_proxies",
                      "allowed_hosts"})
# Environment names from [tool.afterparty.web.environments] are path segments of the console's URLs.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}")
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
MIN_SECRET_BYTES = 32
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# The names a console bound to this machine answers to when allowed_hosts is not given.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


@dataclass
class WebConfig:
    """The console's settings. ``environments`` maps each name to its settings (same tasks
    directory and table prefix, its own database URL), the usual configuration's first."""

    environments: dict[str, Settings]
    secret: str
    htpasswd: str | None = None
    proxy_user_header: str | None = None
    trusted_proxies: frozenset[str] = frozenset({"127.0.0.1", "::1"})
    read_only: frozenset[str] = frozenset()
    #: The Host names it answers to (Django's ALLOWED_HOSTS): "name", ".domain" (and its
    #: subdomains), "*" (any).
    allowed_hosts: frozenset[str] = LOOPBACK_NAMES
    #: Only when started with --no-auth on this machine: every visitor acts as this name.
    anonymous_user: str | None = None
    secure_cookie: bool = False
    connect_timeout: float = 5.0
    #: How long a page waits for each environment's records, read side by side: one that has
    #: not answered by then is shown as not answering, and the others are not kept waiting.
    deadline: float = 2.0
    #: Environments whose records a web framework opens (``manage.py afterparty web``,
    #: ``flask afterparty web``, a console mounted in a Flask app): through its connection, as
    #: its ``status`` reads them; every other environment from its URL.
    framework_sessions: dict[str, OpenSession] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def auth_enabled(self) -> bool:
        return self.anonymous_user is None

    def open_session(self, environment: str, connect_timeout: float | None = None) -> Session:
        """One environment's records (nothing connected yet, unless a framework connects),
        trying to connect for ``connect_timeout`` seconds (default: the console's)."""
        opener = self.framework_sessions.get(environment, Session)
        return opener(self.environments[environment],
                      self.connect_timeout if connect_timeout is None else connect_timeout)

    def database_of(self, environment: str) -> str:
        """An environment's database as a page names it before reading it (no password)."""
        if environment in self.framework_sessions:
            return "the application's database"
        return redact_url(self.environments[environment].database_url)

    @classmethod
    def load(cls, settings: Settings, no_auth: bool = False, host: str = "127.0.0.1",
             connect_timeout: float = 5.0, open_session: OpenSession | None = None) -> WebConfig:
        """The console's settings from the usual ones, [tool.afterparty.web] and the
        AFTERPARTY_WEB_* variables; refuses (UsageError) to serve anyone without authentication,
        and (ConfigError) a short secret, an htpasswd file it cannot trust, an environment name
        that is no path segment, or a listening address without allowed_hosts. ``open_session``
        is a web framework's (manage.py, flask): the usual environment's records are read
        through it."""
        config = cls._load(settings, no_auth, host, connect_timeout)
        if open_session is not None and config.environments[settings.environment] is settings:
            config.framework_sessions[settings.environment] = open_session
        return config

    @classmethod
    def _load(cls, settings: Settings, no_auth: bool, host: str, connect_timeout: float) -> WebConfig:
        table = web_table(settings.pyproject)
        htpasswd = os.environ.get("AFTERPARTY_WEB_HTPASSWD") or None
        header = _text(table, "proxy_user_header")
        secret = os.environ.get("AFTERPARTY_WEB_SECRET") or ""
        if no_auth:
            if host not in _LOCAL_HOSTS:
                raise UsageError(f"--no-auth serves only this machine: bind to 127.0.0.1, not {host}")
            import getpass
            import secrets

            return cls(environments(settings, table),
                       _check_secret(secret) if secret else secrets.token_hex(32),
                       allowed_hosts=allowed_hosts(table, host), anonymous_user=getpass.getuser(),
                       connect_timeout=connect_timeout)
        if htpasswd is None and header is None:
            raise UsageError("the console needs users: set AFTERPARTY_WEB_HTPASSWD to an htpasswd "
                             "file with bcrypt hashes (or proxy_user_header in [tool.afterparty.web]); "
                             "on this machine only, --no-auth --host 127.0.0.1 serves without them")
        if htpasswd is not None:
            _check_htpasswd(htpasswd)
        return cls(
            environments(settings, table), _check_secret(secret), htpasswd=htpasswd,
            proxy_user_header=header,
            trusted_proxies=frozenset(_names(table, "trusted_proxies") or ("127.0.0.1", "::1")),
            read_only=frozenset(_names(table, "read_only")),
            allowed_hosts=allowed_hosts(table, host),
            secure_cookie=os.environ.get("AFTERPARTY_WEB_URL", "").startswith("https:"),
            connect_timeout=connect_timeout,
        )


def web_table(pyproject: str | None) -> dict[str, object]:
    """``[tool.afterparty.web]``; ConfigError naming an unknown key."""
    if pyproject is None:
        return {}
    table = read_pyproject_table(pyproject).get("web", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.afterparty.web] must be a table")
    unknown = sorted(set(table) - WEB_KEYS)
    if unknown:
        raise ConfigError(f"{pyproject}: unknown key {unknown[0]!r} in [tool.afterparty.web]; "
                          f"known keys: {', '.join(sorted(WEB_KEYS))}")
    return table


def _check_secret(secret: str) -> str:
    """The secret that signs the console's cookies and tokens, if it is long enough to."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(f"set AFTERPARTY_WEB_SECRET to a random text of at least {MIN_SECRET_BYTES} "
                          "bytes (it signs the console's cookies), e.g. `openssl rand -hex 32`")
    return secret


def _check_htpasswd(path: str) -> None:
    """Refuses a users file that anyone may change, or that no one can sign in with."""
    if not os.path.isfile(path):
        raise ConfigError(f"AFTERPARTY_WEB_HTPASSWD names {path}, which is not a file: "
                          "create it with `htpasswd -cB FILE USER`")
    if os.stat(path).st_mode & stat.S_IWOTH:
        raise ConfigError(f"AFTERPARTY_WEB_HTPASSWD names {path}, which anyone on this machine may "
                          f"write: `chmod o-w {path}`")
    try:
        hashes = read_htpasswd(path)
    except UnicodeDecodeError:
        hashes = {}
    if not any(bcrypt_cost(hashed) for hashed in hashes.values()):
        raise ConfigError(f"AFTERPARTY_WEB_HTPASSWD names {path}, which holds no bcrypt hash (the "
                          f"only kind the console accepts): add a user with `htpasswd -B {path} NAME`")


def allowed_hosts(table: dict[str, object], host: str) -> frozenset[str]:
    """AFTERPARTY_WEB_ALLOWED_HOSTS (comma-separated), else allowed_hosts of [tool.afterparty.web],
    else the loopback names when ``host`` is this machine; ConfigError when bound elsewhere
    without them (any name could then reach it, DNS rebinding included)."""
    given = os.environ.get("AFTERPARTY_WEB_ALLOWED_HOSTS")
    names = ([name for name in given.split(",") if name.strip()] if given is not None
             else _names(table, "allowed_hosts"))
    if names:
        return frozenset(name.strip().lower().rstrip(".") for name in names)
    if _is_loopback(host):
        return LOOPBACK_NAMES | {f"[{host}]" if ":" in host else host.lower()}
    raise ConfigError(f"listening on {host}, the console needs the host names people open it by: "
                      "set allowed_hosts = [\"ops.example.com\"] in [tool.afterparty.web] (or "
                      "AFTERPARTY_WEB_ALLOWED_HOSTS); any other Host gets 400")


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def environments(settings: Settings, table: dict[str, object]) -> dict[str, Settings]:
    """The usual environment, then each of [tool.afterparty.web.environments] (a name given
    there too takes the URL given there). ``"$VAR"`` reads the URL from a variable, so that
    passwords stay out of pyproject.toml."""
    named = table.get("environments", {})
    if not isinstance(named, dict):
        raise ConfigError("[tool.afterparty.web.environments] must map names to database URLs")
    _check_path_segment(settings.environment)
    found = {settings.environment: settings}
    for name, value in named.items():
        _check_path_segment(name)
        if not _NAME.fullmatch(name):
            raise ConfigError(f"environment name {name!r} in [tool.afterparty.web.environments] may "
                              "hold only letters, digits, '_', '.' and '-'")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"[tool.afterparty.web.environments] {name}: give a database URL "
                              "(a string) or \"$VARIABLE\" naming one")
        url = _resolve(name, value)
        source = f"[tool.afterparty.web.environments] {name}"
        found[name] = settings.replace(environment=name, database_url=_anchor(url, settings),
                              database_url_source=source,
                              command=_command(settings, name, value, url))
    return found


def _command(settings: Settings, name: str, value: str, url: str) -> str:
    """The command that acts on an environment of the table, for the hints its pages give: its
    name and its URL (the variable that holds it, or the URL with its password hidden)."""
    variable = _VARIABLE.fullmatch(value)
    shown = f'"${variable.group(1)}"' if variable else shlex.quote(redact_url(url))
    return f"{settings.program} --env {shlex.quote(name)} --database-url {shown}"


def _check_path_segment(name: str) -> None:
    """An environment's name is a segment of the console's addresses: '/' or '..' would change
    which page they name."""
    if "/" in name or ".." in name or name == ".":
        raise ConfigError(f"the environment name {name!r} may not hold '/' or '..': it is part of "
                          "the console's addresses; choose another with --env or "
                          "[tool.afterparty.web.environments]")


def _resolve(name: str, value: str) -> str:
    if not value.startswith("$"):
        return value
    variable = value[1:].strip("{}")
    url = os.environ.get(variable)
    if not url:
        raise ConfigError(f"[tool.afterparty.web.environments] {name} reads its URL from "
                          f"${variable}, which is not set")
    return url


def _anchor(url: str, settings: Settings) -> str:
    """A relative SQLite path is relative to the project, as in [tool.afterparty]."""
    from afterparty.config import anchor_sqlite_path

    return anchor_sqlite_path(url, settings.project_root)


def _text(table: dict[str, object], key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"[tool.afterparty.web] {key} must be a non-empty string")
    return value.strip()


def _names(table: dict[str, object], key: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"[tool.afterparty.web] {key} must be a list of strings")
    return list(value)
