"""The ``afterparty`` command's entry point: a plain ``run`` with nothing to do is answered
before the command line (click) and the runner are imported; everything else goes to them."""

import sys

# The global options that choose the records, as ``run`` takes them before or after its name
# (afterparty.cli_options); any other word and the command line answers.
_SETTING_FLAGS = {"--database-url": "database_url", "--tasks-dir": "tasks_dir",
                  "--env": "environment", "--table-prefix": "table_prefix"}


def main() -> None:
    """Run the command and exit with the documented code."""
    flags = plain_run(sys.argv[1:])
    if flags is not None:
        from afterparty.noop import nothing_to_do

        if nothing_to_do(flags):
            sys.stdout.write("no pending tasks\n")
            sys.stdout.flush()
            raise SystemExit(0)
    from afterparty.cli import main as command_line

    command_line()


def plain_run(args: list[str]) -> dict[str, str | None] | None:
    """The settings flags of ``afterparty [FLAGS] run [FLAGS]``; None for any other command line
    (another command, an option of ``run``, a flag given twice)."""
    flags: dict[str, str | None] = {}
    commands = []
    words = iter(args)
    for word in words:
        name, equals, value = word.partition("=")
        key = _SETTING_FLAGS.get(name)
        if key is None:
            commands.append(word)
            continue
        if key in flags:
            return None
        if not equals:
            value = next(words, "")
        if not value or value.startswith("-"):
            return None
        flags[key] = value
    return flags if commands == ["run"] else None
