"""``manage.py afterparty <command>``: afterparty's command line on Django's settings and database.

Django's own options (``--settings``, ``--pythonpath``, ``--traceback``, ``--no-color``,
``-v/--verbosity``) are taken wherever they appear; everything else is afterparty's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, ClassVar

from django.core.management.base import BaseCommand, CommandError, CommandParser

from afterparty.cli import cli, main
from afterparty.contrib.django.framework import DjangoFramework

# Django options that take a value; Django itself applies --settings and --pythonpath.
VALUED = ("--settings", "--pythonpath", "--verbosity")


def split_django_options(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Django's standard options out of a ``manage.py afterparty`` command line, and the rest.

    ``-v`` followed by a level (``-v 2``, ``-v2``) is Django's verbosity; a bare ``-v`` stays
    afterparty's ``--verbose``.
    """
    options: dict[str, Any] = {"verbosity": 1, "traceback": False, "no_color": False}
    rest: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        following = argv[index + 1] if index + 1 < len(argv) else ""
        name, equals, value = token.partition("=")
        index += 1
        if token == "--":
            rest.extend(argv[index - 1:])
            break
        if name in VALUED:
            if not equals:
                value, index = following, index + 1
            if name == "--verbosity":
                options["verbosity"] = _level(value)
        elif token in ("--traceback", "--no-color"):
            options[token[2:].replace("-", "_")] = True
        elif token == "-v" and _is_level(following):
            options["verbosity"], index = int(following), index + 1
        elif token.startswith("-v") and _is_level(token[2:]):
            options["verbosity"] = int(token[2:])
        else:
            rest.append(token)
    return options, rest


def _is_level(value: str) -> bool:
    return value in ("0", "1", "2", "3")


def _level(value: str) -> int:
    if not _is_level(value):
        raise CommandError(f"--verbosity takes 0, 1, 2 or 3, not {value!r}", returncode=2)
    return int(value)


def _has_option(name: str) -> bool:
    return any(name in getattr(param, "opts", ()) + getattr(param, "secondary_opts", ())
               for param in cli.params)


def afterparty_args(options: dict[str, Any], args: list[str]) -> list[str]:
    """afterparty's command line for Django's options: tracebacks for ``--traceback`` and
    ``-v 3``, no color for ``--no-color``, quiet for ``-v 0`` where afterparty has it."""
    flags = []
    if options.get("traceback") or int(options.get("verbosity", 1)) >= 3:
        flags.append("--verbose")
    if options.get("no_color") and _has_option("--no-color"):
        flags.append("--no-color")
    if int(options.get("verbosity", 1)) == 0 and _has_option("--quiet"):
        flags.append("--quiet")
    return [*flags, *args]


@contextlib.contextmanager
def no_color(wanted: bool) -> Iterator[None]:
    """NO_COLOR while afterparty runs, for an afterparty without a --no-color option."""
    if not wanted or _has_option("--no-color"):
        yield
        return
    before = os.environ.get("NO_COLOR")
    os.environ["NO_COLOR"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("NO_COLOR", None)
        else:
            os.environ["NO_COLOR"] = before


class Command(BaseCommand):
    help = ("Run one-off release tasks exactly once per environment, on Django's database. "
            "Django's options below; afterparty's commands and options after them.")
    # afterparty checks its own configuration; Django's checks would slow down every deploy.
    requires_system_checks: ClassVar[list[str]] = []
    # --version is afterparty's; afterparty has no forced color.
    suppressed_base_arguments: ClassVar[set[str]] = {"--version", "--force-color"}

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER, metavar="COMMAND ...",
                            help="an afterparty command and its options (listed below)")

    def print_help(self, prog_name: str, subcommand: str) -> None:
        """``manage.py help afterparty``: Django's options, then afterparty's commands."""
        self.create_parser(prog_name, subcommand).print_help(self.stdout._out)
        self.stdout.write("")
        with self._streams(), contextlib.suppress(SystemExit):
            main(["--help"], prog_name=self._prog(prog_name, subcommand), framework=DjangoFramework())

    def run_from_argv(self, argv: list[str]) -> None:
        # afterparty parses its own options, so that they are exactly the command line's.
        try:
            options, args = split_django_options(argv[2:])
        except CommandError as exc:
            self.stderr.write(f"{self._prog(argv[0], argv[1])}: error: {exc}")
            sys.exit(exc.returncode)
        if args in (["--help"], ["-h"]):
            self.print_help(argv[0], argv[1])
            return
        with no_color(options["no_color"]):
            main(afterparty_args(options, args), prog_name=self._prog(argv[0], argv[1]),
                 framework=DjangoFramework())

    def handle(self, *args: Any, **options: Any) -> None:
        """``call_command("afterparty", "run", stdout=buf)``: output goes to ``buf``; a non-zero
        exit becomes a CommandError carrying afterparty's exit code."""
        try:
            with self._streams(), no_color(bool(options.get("no_color"))):
                # Hints name the command people type, not the bare `afterparty` (another database).
                main(afterparty_args(options, list(args)), prog_name="manage.py afterparty",
                     framework=DjangoFramework())
        except SystemExit as stop:
            if stop.code:
                raise CommandError(f"afterparty exited with code {stop.code}",
                                   returncode=int(stop.code)) from None

    @contextlib.contextmanager
    def _streams(self) -> Iterator[None]:
        # afterparty prints through click to sys.stdout/sys.stderr: make those the command's.
        with contextlib.redirect_stdout(self.stdout._out), contextlib.redirect_stderr(self.stderr._out):
            yield

    @staticmethod
    def _prog(prog_name: str, subcommand: str) -> str:
        return f"{os.path.basename(prog_name)} {subcommand}"
