"""``manage.py afterparty <command>``: afterparty's command line on Django's settings and database."""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from afterparty.cli import main
from afterparty.contrib.django.framework import DjangoFramework


class Command(BaseCommand):
    help = ("Run one-off release tasks exactly once: every afterparty command and option "
            "(manage.py afterparty --help)")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER, help="an afterparty command and its options")

    def run_from_argv(self, argv: list[str]) -> None:
        # afterparty parses its own options, so that they are exactly the command line's.
        main(argv[2:], prog_name=f"{os.path.basename(argv[0])} {argv[1]}", framework=DjangoFramework())

    def handle(self, *args: Any, **options: Any) -> None:
        """``call_command("afterparty", "run")``: a non-zero exit becomes a CommandError."""
        try:
            main(list(args), prog_name="afterparty", framework=DjangoFramework())
        except SystemExit as stop:
            if stop.code:
                raise CommandError(f"afterparty exited with code {stop.code}",
                                   returncode=int(stop.code)) from None
