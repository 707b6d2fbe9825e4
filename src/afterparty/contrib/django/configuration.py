"""The ``AFTERPARTY`` setting of a Django project, mapped onto afterparty's configuration."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings as django_settings

from afterparty.config import KNOWN_KEYS, Settings, load_settings
from afterparty.errors import ConfigError

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
