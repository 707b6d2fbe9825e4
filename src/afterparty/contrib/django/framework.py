"""``manage.py afterparty``'s framework: Django's settings and database, and which database
alias holds the records."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from afterparty.cli_options import refuse_database_url
from afterparty.config import Settings
from afterparty.contrib.django.configuration import DATABASE, afterparty_setting, django_afterparty_settings
from afterparty.session import Session


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
