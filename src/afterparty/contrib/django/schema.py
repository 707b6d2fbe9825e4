"""The records tables created from a Django migration, with afterparty's own DDL."""

from __future__ import annotations

from typing import Any

from afterparty.backends import dialect_for
from afterparty.backends.base import Database
from afterparty.backends.url import DatabaseURL
from afterparty.contrib.django.backend import DjangoConnection
from afterparty.recorder import Recorder


def _database(schema_editor: Any) -> Database:
    connection = schema_editor.connection
    url = DatabaseURL(backend=connection.vendor, database=str(connection.settings_dict["NAME"]),
                      redacted=f"django:{connection.alias} ({connection.vendor})")
    return Database(url, dialect_for(connection.vendor), DjangoConnection(connection.alias, connection))


def create_records_tables(apps: Any, schema_editor: Any) -> None:
    """What afterparty's ``ensure_schema`` creates (CREATE TABLE IF NOT EXISTS, same types and
    index), so that migrating before or after the first ``afterparty run`` ends the same.
    The meta rows (schema version, lock epoch) are left to afterparty."""
    _recorder(schema_editor).create_tables()


def drop_records_tables(apps: Any, schema_editor: Any) -> None:
    """``migrate afterparty zero``: the records and their history are gone."""
    _recorder(schema_editor).drop_tables()


def _recorder(schema_editor: Any) -> Recorder:
    from afterparty.contrib.django.models import PREFIX

    return Recorder(_database(schema_editor), PREFIX)
