"""The registry of databases: which Dialect speaks for a URL scheme or a framework's vendor."""

from __future__ import annotations

from afterparty.errors import ConfigError
from afterparty.tuples import TYPE_CHECKING

if TYPE_CHECKING:
    from afterparty.backends.base import Database, Dialect
    from afterparty.backends.url import DatabaseURL

# Database name (as URLs, Django's vendor and SQLAlchemy's dialect say it) -> module; one line
# per database.
MODULES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}


def dialect_for(name: str) -> Dialect:
    """The Dialect of a database, importing only its module (drivers load on connect)."""
    module = MODULES.get(name.lower())
    if module is None:
        raise ConfigError(
            f"afterparty cannot keep records in a {name} database: use SQLite, PostgreSQL "
            "or MySQL/MariaDB"
        )
    # __import__, not importlib's: importing importlib costs the no-op look more than this.
    dialect: Dialect = __import__(f"afterparty.backends.{module}", fromlist=["DIALECT"]).DIALECT
    return dialect


def open_database(url: DatabaseURL, connect_timeout: float = 30.0) -> Database:
    """Connect to the database of a URL with afterparty's own driver for it."""
    from afterparty.backends.base import Database

    dialect = dialect_for(url.backend)
    return Database.prepared(url, dialect, dialect.connect(url, connect_timeout))


def refuse_memory_database(vendor: str, name: str, what: str, instead: str) -> None:
    """An in-memory SQLite database forgets what ran: refuse it, saying what to use instead."""
    from afterparty.backends.url import is_memory_database

    if vendor == "sqlite" and is_memory_database(name):
        raise ConfigError(f"{what} is an in-memory SQLite database: it would forget what ran; {instead}")
