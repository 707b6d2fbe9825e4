"""The ``afterparty`` command's entry point: a plain ``run`` with nothing to do is answered
before the command line (click) and the runner are imported; everything else goes to them."""

import sys

# The global options that choose the records, as ``run`` takes them before or after its name
# (afterparty.cli_options), and the options of ``run`` that change nothing when there is
# nothing to do, each with a check of its value (None: a flag); any other word and the command
# line answers.
_SETTING_FLAGS = {"--database-url": "database_url", "--tasks-dir": "tasks_dir",
                  "--env": "environment", "--table-prefix": "table_prefix"}


def _seconds(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


_RUN_OPTIONS = {"--no-input": None, "--keep-going": None, "--wait": _seconds,
                "--if-busy": ("wait", "skip", "fail").__contains__}


def main() -> None:
    """Run the command and exit with the documented code."""
    flags = plain_run(sys.argv[1:])
    if flags is not None:
        from afterparty.noop import nothing_to_do

        try:
            if nothing_to_do(flags):
                sys.stdout.write("no pending tasks\n")
                sys.stdout.flush()
                raise SystemExit(0)
        except KeyboardInterrupt:  # as the command line ends on Ctrl-C: no traceback
            raise SystemExit(130) from None
    from afterparty.cli import main as command_line

    command_line()


def plain_run(args: list[str]) -> dict[str, str | None] | None:
    """The settings flags of ``afterparty [FLAGS] run [FLAGS] [OPTIONS]``; None for any other
    command line (another command, another option, a flag given twice, a value the command line
    would refuse)."""
    flags: dict[str, str | None] = {}
    seen: set[str] = set()
    commands = []
    words = iter(args)
    for word in words:
        name, equals, value = word.partition("=")
        key = _SETTING_FLAGS.get(name)
        if key is None and name not in _RUN_OPTIONS:
            commands.append(word)
            continue
        if name in seen:
            return None
        seen.add(name)
        check = _RUN_OPTIONS.get(name)
        if key is None and check is None:
            if equals:
                return None
            continue
        if not equals:
            value = next(words, "")
        if not value or value.startswith("-") or (check is not None and not check(value)):
            return None
        if key is not None:
            flags[key] = value
    return flags if commands == ["run"] else None
