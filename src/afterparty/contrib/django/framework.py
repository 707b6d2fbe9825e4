"""The ``AFTERPARTY`` setting of a Django project, mapped onto afterparty's configuration."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings as django_settings
from django.db import DEFAULT_DB_ALIAS

from afterparty.config import KNOWN_KEYS, Settings, load_settings
from afterparty.contrib import refuse_database_url
from afterparty.errors import ConfigError
from afterparty.session import Session

# AFTERPARTY keys: the [tool.afterparty] keys in capitals, and DATABASE, a database alias
# (the records live in Django's own database, never at a second URL).
KEYS = {key.upper(): key for key in KNOWN_KEYS - {"database_url"}}
DATABASE = "DATABASE"


def afterparty_setting() -> dict[str, Any]:
    """The project's ``AFTERPARTY`` dict, checked for unknown keys."""
    value = getattr(django_settings, "AFTERPARTY", {})
    if not isinstance(value, dict):
        raise ConfigError(
            "the AFTERPARTY setting must be a dict, such as {'TASKS_DIR': BASE_DIR / 'release_tasks'}")
    unknown = sorted(set(value) - set(KEYS) - {DATABASE})
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in the AFTERPARTY setting; known keys: "
            f"{', '.join(sorted([*KEYS, DATABASE]))}"
        )
    return value


class DjangoFramework:
    """``manage.py afterparty``: Django's settings and database (see afterparty.contrib.Framework)."""

    def settings(self, flags: dict[str, str | None]) -> Settings:
        refuse_database_url(flags, "manage.py afterparty",
                            "choose a database alias with AFTERPARTY['DATABASE']")
        return django_afterparty_settings(flags)

    def session(self, settings: Settings, connect_timeout: float) -> Session:
        from afterparty.contrib.django.backend import django_database

        return Session(settings, connect_timeout, database=django_database(records_alias()))


def records_alias() -> str:
    """The database alias of the records: ``AFTERPARTY["DATABASE"]``, else where the project's
    ``DATABASE_ROUTERS`` send the app's writes (``default`` without routers).

    The command line and the admin both use it, so the admin shows what runs recorded.
    """
    configured = afterparty_setting().get(DATABASE)
    if configured is not None:
        return str(configured)
    from django.db import router

    from afterparty.contrib.django.models import Task

    return str(router.db_for_write(Task) or DEFAULT_DB_ALIAS)


def django_afterparty_settings(flags: dict[str, str | None] | None = None) -> Settings:
    """Flags > environment variables > AFTERPARTY > pyproject.toml > defaults.

    With a ``BASE_DIR``, relative paths in AFTERPARTY, in environment variables and the
    default ``release_tasks`` are relative to it, and pyproject.toml is looked for from it:
    ``manage.py`` finds the same tasks from whatever directory it is run. A ``--tasks-dir``
    typed on the command line stays relative to the shell's directory.
    """
    configured = afterparty_setting()
    app_settings = {
        KEYS[key]: os.fspath(value) if isinstance(value, os.PathLike) else value
        for key, value in configured.items() if key in KEYS
    }
    base = getattr(django_settings, "BASE_DIR", None)
    if base is None:
        return load_settings(flags, app_settings=app_settings)
    flags = dict(flags or {})
    if flags.get("tasks_dir"):
        flags["tasks_dir"] = os.path.abspath(str(flags["tasks_dir"]))
    return load_settings(flags, cwd=os.fspath(base), app_settings=app_settings,
                         app_base=os.fspath(base))
