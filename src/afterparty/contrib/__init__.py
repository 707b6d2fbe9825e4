"""Integrations with web frameworks (Django, Flask) and what each gives the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from afterparty.errors import UsageError

if TYPE_CHECKING:
    from afterparty.config import Settings
    from afterparty.session import Session


class Framework(Protocol):
    """Passed to ``afterparty.cli.main`` by ``manage.py afterparty`` and ``flask afterparty``."""

    def settings(self, flags: dict[str, str | None]) -> Settings:
        """The settings, with the framework's own between environment and pyproject.toml."""

    def session(self, settings: Settings, connect_timeout: float) -> Session:
        """The session, recording through the framework's database connection."""


def refuse_database_url(flags: dict[str, str | None], command: str, instead: str) -> None:
    """The framework's database is the tracking database: a URL flag would split the two."""
    if flags.get("database_url"):
        raise UsageError(
            f"{command} keeps records in the application's database, so that a task's ORM "
            f"work and its record commit together: {instead} instead of --database-url"
        )
