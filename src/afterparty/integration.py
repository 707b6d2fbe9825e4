"""What a web framework's integration gives the command line: its settings and its database."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Protocol, TypeVar

from afterparty.errors import UsageError

if TYPE_CHECKING:
    from afterparty.backends.base import Backend
    from afterparty.config import Settings
    from afterparty.environment import Environment

B = TypeVar("B", bound="Backend")


class Framework(Protocol):
    """Passed to ``afterparty.cli.main`` by ``manage.py afterparty`` and ``flask afterparty``."""

    def settings(self, flags: dict[str, str | None]) -> Settings:
        """The settings, with the framework's own between environment and pyproject.toml."""

    def environment(self, settings: Settings, connect_timeout: float) -> Environment:
        """The environment, recording through the framework's database connection."""


@functools.cache
def backend_over(connection_class: type[B], vendor: str) -> type[B]:
    """A backend that speaks ``vendor``'s SQL and lock over a framework's connections.

    ``connection_class`` replaces how connections are opened and transactions run; the
    database's own backend class supplies everything else.
    """
    from afterparty.backends import backend_class

    vendor_class = backend_class(vendor)
    name = f"{connection_class.__name__}{vendor_class.__name__}"
    return type(name, (connection_class, vendor_class), {})


def refuse_database_url(flags: dict[str, str | None], command: str, instead: str) -> None:
    """The framework's database is the tracking database: a URL flag would split the two."""
    if flags.get("database_url"):
        raise UsageError(
            f"{command} keeps records in the application's database, so that a task's ORM "
            f"work and its record commit together: {instead} instead of --database-url"
        )
