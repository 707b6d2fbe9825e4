"""``flask afterparty <command>``: afterparty's command line on a Flask app's config and database.

Registered through the ``flask.commands`` entry point group, so installing afterparty is all
a Flask app needs. With Flask-SQLAlchemy, records are kept through the app's engine.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource
from flask import Flask, current_app
from flask.cli import ScriptInfo, with_appcontext

from afterparty.cli import main
from afterparty.cli_options import refuse_database_url
from afterparty.config import ENV_VARS, Settings, load_settings
from afterparty.session import Session

if TYPE_CHECKING:
    from starlette.applications import Starlette

# app.config keys are named as the environment variables are: AFTERPARTY_TASKS_DIR, ...
CONFIG_KEYS = {names[0]: key for key, names in ENV_VARS.items()}


class FlaskFramework:
    """``flask afterparty``: the app's config and engine (see afterparty.contrib.Framework)."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    @property
    def engine(self):  # type: ignore[no-untyped-def]
        """Flask-SQLAlchemy's engine, when the app uses it (asked in the app's context, so
        that the console's threads find it too)."""
        extension = self.app.extensions.get("sqlalchemy")
        if extension is None:
            return None
        with self.app.app_context():
            return extension.engine

    def settings(self, flags: dict[str, str | None]) -> Settings:
        """Flags > environment variables > app.config > pyproject.toml > defaults.

        Relative paths in app.config are relative to the app's root path.
        """
        if self.engine is not None:
            refuse_database_url(flags, "flask afterparty", "configure SQLALCHEMY_DATABASE_URI")
        app_settings = {key: self.app.config[name] for name, key in CONFIG_KEYS.items()
                        if self.app.config.get(name) is not None}
        return load_settings(flags, app_settings=app_settings, app_base=self.app.root_path)

    def session(self, settings: Settings, connect_timeout: float) -> Session:
        engine = self.engine
        if engine is None:
            return Session(settings, connect_timeout)
        from afterparty.backends.sqlalchemy import engine_database

        return Session(settings, connect_timeout, database=engine_database(engine, connect_timeout))


def console_app(app: Flask) -> Starlette:
    """The web console on this app's configuration and database (the records ``flask afterparty``
    keeps), as an ASGI app to mount into the app through a2wsgi::

        app.wsgi_app = DispatcherMiddleware(app.wsgi_app,
                                            {"/afterparty": ASGIMiddleware(console_app(app))})

    Users, secret and host names as for ``afterparty web`` (``AFTERPARTY_WEB_*``)."""
    from afterparty.web import WebConfig, create_app

    framework = FlaskFramework(app)
    with app.app_context():
        settings = framework.settings({})
    settings.program = settings.command = "flask afterparty"
    return create_app(WebConfig.load(settings, open_session=framework.session))


@click.command("afterparty", add_help_option=False,
               context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@with_appcontext
def afterparty_command(args: tuple[str, ...]) -> None:
    """Run one-off release tasks exactly once (flask afterparty --help)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    main(list(args), prog_name=program(click.get_current_context()), framework=FlaskFramework(app))


def program(ctx: click.Context) -> str:
    """``flask afterparty`` as the user typed it: with the ``--app`` they gave (FLASK_APP, in
    the environment, is there for the next command too)."""
    root = ctx.find_root()
    info = root.find_object(ScriptInfo)
    if (root.get_parameter_source("app") is not ParameterSource.COMMANDLINE or info is None
            or not info.app_import_path):
        return "flask afterparty"
    return f"flask --app {shlex.quote(info.app_import_path)} afterparty"
