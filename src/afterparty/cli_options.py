"""The command line's global options (accepted before the command and after it), the state
they leave for the commands, and shell completion of task versions and names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import click

from afterparty.errors import AfterpartyError, UsageError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from afterparty.config import Settings
    from afterparty.logs import CommandLineLogHandler
    from afterparty.session import Session

# Where the global options' values are kept (the root context's meta): given before the
# command or after it, the command's own wins.
_OPTIONS = "afterparty.options"
_SETTING_FLAGS = ("database_url", "tasks_dir", "environment", "table_prefix")
# The options that choose the records, as a hint repeats them.
_HINT_FLAGS = (("environment", "--env"), ("database_url", "--database-url"),
               ("tasks_dir", "--tasks-dir"), ("table_prefix", "--table-prefix"))


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



class State:
    """What the global options leave for the commands."""

    def __init__(self, options: dict[str, Any], command: str,
                 framework: Framework | None = None) -> None:
        # Filled in by the options' callbacks, the group's first and then the command's.
        self.options = options
        #: How the user runs afterparty, for every hint naming a command.
        self.command = command
        # A web framework's integration (afterparty.contrib.Framework), if one runs us.
        self.framework = framework
        self._log_handler: CommandLineLogHandler | None = None
        self._settings: Settings | None = None

    @classmethod
    def of(cls, ctx: click.Context) -> State:
        """The state of a command line: the options of the root context, the command the user
        typed (its program name), and the framework it was given as ``obj``."""
        root = ctx.find_root()
        return cls(root.meta.setdefault(_OPTIONS, {}), command_name(root.info_name or "afterparty"),
                   framework=ctx.obj)

    @property
    def flags(self) -> dict[str, str | None]:
        return {key: self.options.get(key) for key in _SETTING_FLAGS}

    @property
    def command_line(self) -> str:
        """The command as the user ran it: the program and the options they gave that choose
        the records (a URL with its password hidden), so that a hint pasted as it is acts on
        the same environment."""
        import shlex

        from afterparty.backends.url import redact_url

        words = [self.command]
        for key, flag in _HINT_FLAGS:
            value = self.options.get(key)
            if value:
                shown = redact_url(str(value)) if key == "database_url" else str(value)
                words += [flag, shlex.quote(shown)]
        return " ".join(words)

    @property
    def connect_timeout(self) -> float:
        given = self.options.get("connect_timeout")
        return 30.0 if given is None else float(given)

    @property
    def verbose(self) -> bool:
        return bool(self.options.get("verbose"))

    @property
    def log_format(self) -> str:
        return str(self.options.get("log_format") or "text")

    def settings(self, show_logs: bool = True) -> Settings:
        """The command's settings; ``show_logs=False`` leaves the log handler to ``show_logs``
        (``run`` with nothing to do never imports logging)."""
        if self.framework is not None:
            settings = self.framework.settings(self.flags)
        else:
            from afterparty.config import load_settings

            settings = load_settings(self.flags)
        settings.program = self.command
        settings.command = self.command_line
        self._settings = settings
        if show_logs:
            self.show_logs()
        return settings

    def show_logs(self) -> None:
        """Show the runner's own log records on stderr (text with a time, or JSON lines). On the
        ``afterparty`` logger, not the root: a task's records, already shown with its output,
        are not shown twice, and an application's handlers still get everything."""
        if self._log_handler is not None or self._settings is None:
            return
        from afterparty.logs import CommandLineLogHandler

        self._log_handler = CommandLineLogHandler.install(self.log_format, self._settings)

    def close(self) -> None:
        if self._log_handler is not None:
            from afterparty.logs import CommandLineLogHandler

            CommandLineLogHandler.uninstall(self._log_handler)
            self._log_handler = None

    def session(self, show_logs: bool = True) -> Session:
        if self.framework is not None:
            return self.framework.session(self.settings(show_logs), self.connect_timeout)
        from afterparty.session import Session

        return Session(self.settings(show_logs), self.connect_timeout)


pass_state = click.make_pass_decorator(State)


def remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A global option's callback: keep its value where every command finds it."""
    if param.name is None or value is None or (value is False and param.name == "verbose"):
        return
    ctx.find_root().meta.setdefault(_OPTIONS, {})[param.name] = value
    if param.name == "color":
        context: click.Context | None = ctx
        while context is not None:  # click.echo and click.style read it from the context
            context.color = bool(value)
            context = context.parent


def global_options() -> list[click.Option]:
    """The options every command accepts, before its name or after it (one list, made anew
    for each command: click keeps state on them)."""
    def option(*decls: str, **attrs: Any) -> click.Option:
        return click.Option(decls, expose_value=False, callback=remember, **attrs)

    return [
        option("--database-url", metavar="URL", help="Where records live (AFTERPARTY_DATABASE_URL)."),
        option("--tasks-dir", metavar="DIR", help="Task files directory (AFTERPARTY_TASKS_DIR)."),
        option("--env", "environment", metavar="NAME", help="Environment name (AFTERPARTY_ENV)."),
        option("--table-prefix", metavar="PREFIX",
               help="Records table prefix (AFTERPARTY_TABLE_PREFIX)."),
        option("--connect-timeout", type=float, metavar="SECONDS",
               help="How long to keep trying an unreachable database (default 30)."),
        option("--color/--no-color", default=None,
               help="Color the state words (default: at a terminal, unless NO_COLOR is set)."),
        option("--log-format", type=click.Choice(["text", "json"]), envvar="AFTERPARTY_LOG_FORMAT",
               help="Log records on stderr as text or as JSON lines (AFTERPARTY_LOG_FORMAT)."),
        option("-v", "--verbose", is_flag=True, default=False, help="Show tracebacks of errors."),
    ]


def complete_tasks(ctx: click.Context, param: click.Parameter,
                   incomplete: str) -> list[CompletionItem]:
    """Shell completion of task versions and names, from the tasks directory only: completing
    a word must never reach for the database."""
    from click.shell_completion import CompletionItem

    from afterparty.config import load_settings
    from afterparty.loader import scan_tasks_dir_leniently

    options = ctx.find_root().meta.get(_OPTIONS, {})
    try:
        settings = load_settings({key: options.get(key) for key in _SETTING_FLAGS})
        files, _ = scan_tasks_dir_leniently(settings.tasks_dir)
    except (AfterpartyError, OSError):
        return []
    items = [CompletionItem(f.version, help=f.name) for f in files if f.version.startswith(incomplete)]
    items += [CompletionItem(f.name, help=f.version) for f in files if f.name.startswith(incomplete)]
    return items


class CommandGroup(click.Group):
    """Gives every command the global options, so that `afterparty run --env production`
    works as `afterparty --env production run` does."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.extend(global_options())
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        """An error's hints name the command as the user ran it, options included."""
        try:
            return super().invoke(ctx)
        except AfterpartyError as exc:
            state = ctx.obj if isinstance(ctx.obj, State) else State.of(ctx)
            exc.command = state.command_line
            raise


def command_name(prog_name: str) -> str:
    """What the user types to run afterparty: Django's ``manage.py`` is run by Python."""
    return f"python {prog_name}" if prog_name.startswith("manage.py ") else prog_name
