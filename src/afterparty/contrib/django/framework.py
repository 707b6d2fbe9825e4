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

        alias = str(afterparty_setting().get(DATABASE, DEFAULT_DB_ALIAS))
        return Session(settings, connect_timeout, database=django_database(alias))


def django_afterparty_settings(flags: dict[str, str | None] | None = None) -> Settings:
    """Flags > environment variables > AFTERPARTY > pyproject.toml > defaults.

    Relative paths in AFTERPARTY are relative to ``BASE_DIR`` when the project has one.
    """
    configured = afterparty_setting()
    app_settings = {
        KEYS[key]: os.fspath(value) if isinstance(value, os.PathLike) else value
        for key, value in configured.items() if key in KEYS
    }
    base = getattr(django_settings, "BASE_DIR", None)
    return load_settings(flags, app_settings=app_settings,
                         app_base=os.fspath(base) if base is not None else None)
