"""The command line: parses arguments, calls the library, prints what came back."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from afterparty.cli_options import CommandGroup, command_name, complete_tasks, global_options, pass_state
from afterparty.cli_options import State as _State
from afterparty.errors import AfterpartyError, StoppedBySignal, TaskFileError
from afterparty.printing import (
    RunPrinter,
    print_attempt,
    print_background_outcome,
    print_background_wait,
    print_decisions,
    print_followed,
    print_long_task,
    print_release_rollback,
    print_run_summary,
    print_status,
    print_tick,
    print_waiting,
)

if TYPE_CHECKING:
    from afterparty.cli_options import Framework
    from afterparty.results import RunResult
    from afterparty.session import Session

# Only what every command needs is imported up here: `run` with nothing to do must stay fast.


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]},
             params=global_options())
@click.version_option(package_name="afterparty")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Run one-off release tasks exactly once per environment."""
    state = _State.of(ctx)
    ctx.obj = state
    ctx.call_on_close(state.close)


@cli.command()
def init() -> None:
    """Create the tasks directory and a [tool.afterparty] table (safe to repeat)."""
    import os

    from afterparty.scaffold import init_project

    created = init_project(os.getcwd())
    for thing in created:
        click.echo(f"created {thing}")
    if not created:
        click.echo("already set up: nothing to do")


@cli.command()
@click.argument("name")
@click.option("--description", "-d", help="What the task does, in one line.")
@click.option("--manual", is_flag=True, help="A step for a person: its body is instructions.")
@click.option("--with-test", is_flag=True, help="Also write a test for it in the tests folder.")
@pass_state
def new(state: _State, name: str, description: str | None, manual: bool, with_test: bool) -> None:
    """Write a new task file from the template and print its path."""
    import os

    from afterparty.scaffold import new_task, new_task_test

    settings = state.settings()
    path = new_task(settings, name, description, manual=manual)
    click.echo(os.path.relpath(path))
    if with_test:
        click.echo(os.path.relpath(new_task_test(settings, path)))


@cli.command()
@click.argument("versions", nargs=-1, shell_complete=complete_tasks)
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--keep-going", is_flag=True, help="Go on with later tasks after a failure.")
@click.option("--wait", type=float, default=300.0, show_default=True, metavar="SECONDS",
              help="How long to wait for another runner's lock.")
@click.option("--if-busy", type=click.Choice(["wait", "skip", "fail"]), default="wait",
              show_default=True, help="What to do when another runner holds the lock.")
@click.option("--group", metavar="NAME", help="Run only the tasks of this group.")
@click.option("--no-input", is_flag=True, help="Never ask at the terminal (human steps wait).")
@click.option("--wait-background", is_flag=True,
              help="Wait for the background tasks this run queued (see README).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see README).")
@pass_state
def run(state: _State, versions: tuple[str, ...], dry_run: bool, keep_going: bool, wait: float,
        if_busy: str, group: str | None, no_input: bool, wait_background: bool, as_json: bool) -> int:
    """Run pending tasks (or only VERSIONS) in version order."""
    import time

    from afterparty.executor import Executor

    started = time.monotonic()
    # The log handler is installed once there is work (a run with nothing to do stays lean).
    session = state.session(show_logs=dry_run)
    reporter = RunPrinter(quiet=as_json, may_ask=not (no_input or as_json),
                          command=session.settings.command, log_format=state.log_format,
                          on_work=state.show_logs)
    reporter.log_fields = {"environment": session.settings.environment}
    try:
        if group is not None:
            from afterparty.planner import check_group

            check_group(session.settings.tasks_dir, group)
        executor = Executor(session, reporter)
        if dry_run:
            result = executor.dry_run(list(versions), group)
        else:
            result = executor.run(list(versions), keep_going, wait, if_busy, group)
    finally:
        reporter.close()
        session.close()
    if not as_json:
        print_run_summary(result, dry_run, time.monotonic() - started, session.settings.command)
    code = int(result.exit_code)
    if wait_background and result.background and result.stopped_by is None:
        try:
            code = _wait_background(state, session, result, as_json, keep_going, wait, if_busy)
        finally:
            session.close()
    if as_json:
        from afterparty.report import RunReport

        report = RunReport.of(result, session.settings.environment, dry_run)
        report.exit_code = code
        click.echo(_json(report.as_dict(), indent=2))
    return code


def _wait_background(state: _State, session: Session, result: RunResult, as_json: bool,
                     keep_going: bool, wait: float, if_busy: str) -> int:
    """``run --wait-background``: wait, run what waited on the background tasks as they end,
    and exit as if everything had run here."""
    from afterparty.background.waiting import exit_code_of
    from afterparty.executor import Executor

    command = session.settings.command
    if not as_json:
        print_background_wait(len(result.background))
    reporter = RunPrinter(quiet=as_json, may_ask=False, command=command,
                          log_format=state.log_format, on_work=state.show_logs)
    ran_before = len(result.outcomes)
    try:
        stopped = Executor(session, reporter).follow_background(
            result, lambda task: None if as_json else print_background_outcome(task, command),
            keep_going, wait, if_busy)
    finally:
        reporter.close()
    if stopped is not None:
        click.echo("stopped waiting: the background tasks go on on their workers; see "
                   f"`{command} status`", err=True)
        return 128 + stopped
    if not as_json and len(result.outcomes) > ran_before:
        print_followed(result.outcomes[ran_before:])
    return max(int(result.exit_code), exit_code_of(result.background), key=_severity)


def _severity(code: int) -> int:
    """A failure (1) outweighs a task held for a person (5), which outweighs success (0)."""
    return {0: 0, 5: 1, 1: 2}.get(code, 3)


def _json(data: Any, indent: int = 2) -> str:
    import json  # not on the no-op path

    return json.dumps(data, indent=indent)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see README).")
@pass_state
def status(state: _State, as_json: bool) -> None:
    """Show every task file and record: state, last run, file missing, modified."""
    import gc

    from afterparty.report import task_statuses

    # Thousands of rows and no reference cycles: the collector would only walk them again
    # and again. status runs no task code, so nothing here needs it.
    enabled = gc.isenabled()
    gc.disable()
    session = state.session(show_logs=False)  # status logs nothing: logging stays unimported
    problems: list[str] = []  # stray files: status still answers, and names them
    try:
        rows = task_statuses(session, problems)
    finally:
        session.close()
        if enabled:
            gc.enable()
    _say_what_is_not_there_yet(session, problems)
    if as_json:
        from afterparty.report import StatusReport

        report = StatusReport(session.settings.environment, session.url.redacted, rows, problems)
        click.echo(_json(report.as_dict(), indent=2))
        return
    print_status(rows, session.settings.tasks_dir, session.settings.command)


@cli.command()
@click.argument("version", shell_complete=complete_tasks)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_state
def show(state: _State, version: str, as_json: bool) -> None:
    """Show one task's attempts: who, where, when, error and captured output."""

    from afterparty.report import task_history

    session = state.session()
    problems: list[str] = []
    try:
        row, attempts = task_history(session, version, problems)
    finally:
        session.close()
    _say_what_is_not_there_yet(session, problems)
    if as_json:
        from afterparty.report import TaskHistory

        click.echo(_json(TaskHistory(row, attempts).as_dict(), indent=2))
        return
    click.echo(f"{row.version} {row.name}: {row.state}")
    if row.description:
        click.echo(f"  {row.description}")
    click.echo(f"  file: {row.path or 'missing'}" + ("  (modified since it ran)" if row.modified else ""))
    print_long_task(row)
    if not attempts:
        click.echo("  no attempts yet")
    for number, attempt in enumerate(attempts, 1):
        print_attempt(number, attempt)


def _say_what_is_not_there_yet(session: Session, problems: list[str]) -> None:
    """On stderr, for the commands that only look: no database file yet, files run refuses."""
    missing = session.missing_database_file
    if missing is not None:
        click.echo(f"afterparty: no records yet: {missing} does not exist (nothing has run "
                   "here; `run` creates it)", err=True)
    for problem in problems:
        click.echo(f"afterparty: warning: {problem} (`run` and `check` refuse it)", err=True)


@cli.command()
@pass_state
def check(state: _State) -> None:
    """Validate every task file without touching the database."""
    from afterparty.graph import check_task_files

    settings = state.settings()
    files = check_task_files(settings.tasks_dir, settings.project_root)
    click.echo(f"{len(files)} task file(s) OK in {settings.tasks_dir}")


@cli.command()
@click.option("--allow-pending", is_flag=True, help="Pending tasks do not fail the gate.")
@click.option("--allow-awaiting", is_flag=True, help="Human steps awaiting a person do not fail it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see README).")
@pass_state
def verify(state: _State, allow_pending: bool, allow_awaiting: bool, as_json: bool) -> int:
    """Deploy gate: exit 6 while any task here is pending, failed, interrupted, awaiting or modified."""
    from afterparty.gate import check_environment
    from afterparty.report import task_statuses

    session = state.session()
    try:
        rows = task_statuses(session)
        notices, rolled_back = _release_findings(session, rows)
    finally:
        session.close()
    report = check_environment(rows, session.settings.environment, allow_pending=allow_pending,
                               allow_awaiting=allow_awaiting, notices=notices,
                               rolled_back=rolled_back)
    if as_json:
        click.echo(_json(report.as_dict(), indent=2))
    else:
        from afterparty.printing import for_command

        for line in report.lines():
            click.echo(for_command(line, session.settings.command))
    return report.exit_code


@cli.command()
@click.option("--wait", type=float, default=0.0, show_default=True, metavar="SECONDS",
              help="How long to wait for another runner's lock; then the next tick does it.")
@pass_state
def tick(state: _State, wait: float) -> int:
    """Do what became due since the last run: waiting tasks, held notices, reminders."""
    from afterparty.tick import tick as do_tick

    session = state.session(show_logs=False)
    reporter = RunPrinter(quiet=False, command=session.settings.command,
                          log_format=state.log_format, on_work=state.show_logs)
    try:
        result = do_tick(session, reporter, wait)
    finally:
        reporter.close()
        session.close()
    print_tick(result, session.settings.command)
    return result.exit_code


def _release_findings(session: Session, rows: list[Any]) -> tuple[list[Any], list[Any]]:
    """The notices still held and the releases a deploy rolled back (none before the records
    exist)."""
    if session.missing_database_file is not None:
        return [], []
    from afterparty.releases import held_notices, rolled_back_here

    present = {row.version for row in rows if not row.file_missing}
    return held_notices(session), rolled_back_here(session, present)


def _decide(state: _State, verb: str, decide: Callable[[Any], list[Any]]) -> None:
    """Run one decision command against the environment and print what it changed."""
    session = state.session()
    try:
        print_decisions(decide(session), verb)
    finally:
        session.close()


@cli.command("mark-done")
@click.argument("versions", nargs=-1, shell_complete=complete_tasks)
@click.option("--all", "every", is_flag=True, help="Every task file (baseline an environment).")
@pass_state
def mark_done(state: _State, versions: tuple[str, ...], every: bool) -> None:
    """Record tasks as done without running them."""
    from afterparty.decisions import mark_done as record_done
    from afterparty.errors import UsageError

    if bool(versions) == every:
        raise UsageError("name the tasks to mark done, or give --all (not both)")
    _decide(state, "marked done", lambda env: record_done(env, list(versions), every, print_waiting))


@cli.command()
@click.argument("versions", nargs=-1, required=True, shell_complete=complete_tasks)
@click.option("--reason", required=True, help="Why it is skipped; kept in the history.")
@pass_state
def skip(state: _State, versions: tuple[str, ...], reason: str) -> None:
    """Record tasks as skipped: they will not run."""
    from afterparty.decisions import skip as record_skip

    _decide(state, "skipped", lambda env: record_skip(env, list(versions), reason, print_waiting))


@cli.command()
@click.argument("versions", nargs=-1, required=True, shell_complete=complete_tasks)
@pass_state
def forget(state: _State, versions: tuple[str, ...]) -> None:
    """Make tasks pending again (their history is kept)."""
    from afterparty.decisions import forget as record_forget

    _decide(state, "made pending", lambda env: record_forget(env, list(versions), print_waiting))


@cli.command()
@click.argument("version", shell_complete=complete_tasks)
@click.option("--retry", is_flag=True, help="Run it again on the next run.")
@click.option("--done", is_flag=True, help="Record it as done without running it.")
@click.option("--skip", is_flag=True, help="Record it as skipped.")
@click.option("--note", help="Why; kept in the history.")
@pass_state
def resolve(state: _State, version: str, retry: bool, done: bool, skip: bool,
            note: str | None) -> None:
    """Settle an interrupted or failed task: --retry, --done or --skip."""
    from afterparty.decisions import resolve as record_resolution
    from afterparty.errors import UsageError

    chosen = [name for name, given in (("retry", retry), ("done", done), ("skip", skip)) if given]
    if len(chosen) != 1:
        given = " and ".join(f"--{name}" for name in chosen)
        raise UsageError(f"choose exactly one of --retry, --done or --skip (not {given})" if chosen
                         else "choose one of --retry, --done or --skip")
    choice = chosen[0]
    _decide(state, "resolved",
            lambda env: record_resolution(env, version, choice, note, print_waiting))


@cli.command()
@click.argument("version", shell_complete=complete_tasks)
@click.option("--note", help="What was done; kept in the history.")
@pass_state
def confirm(state: _State, version: str, note: str | None) -> None:
    """Record a human step that awaits confirmation as done."""
    from afterparty.decisions import confirm as record_confirm

    _decide(state, "confirmed", lambda env: record_confirm(env, version, note, print_waiting))


@cli.command()
@click.argument("version", shell_complete=complete_tasks)
@click.option("--note", help="Why; kept in the history.")
@pass_state
def pause(state: _State, version: str, note: str | None) -> None:
    """Ask a running task to stop at its next batch or progress report (its work is kept)."""
    from afterparty.decisions import pause as ask_pause

    _decide(state, "asked to pause", lambda env: ask_pause(env, version, note))


@cli.command()
@click.argument("version", shell_complete=complete_tasks)
@click.option("--note", help="Why; kept in the history.")
@pass_state
def resume(state: _State, version: str, note: str | None) -> None:
    """Make a paused task pending again: the next run goes on from its checkpoint."""
    from afterparty.decisions import resume as record_resume

    _decide(state, "resumed", lambda env: record_resume(env, version, note, print_waiting))


@cli.command()
@click.argument("version", shell_complete=complete_tasks)
@click.option("--note", help="Why; kept in the history.")
@pass_state
def cancel(state: _State, version: str, note: str | None) -> None:
    """Stop a task for good, until someone resolves it (a running one at its next batch)."""
    from afterparty.decisions import cancel as record_cancel

    _decide(state, "cancelled", lambda env: record_cancel(env, version, note, print_waiting))


@cli.command()
@click.argument("version", required=False, shell_complete=complete_tasks)
@click.option("--release", metavar="RELEASE",
              help="Every task that ran in this release, newest first (a deploy rolled it back).")
@click.option("--record-only", is_flag=True, help="Mark it reverted without running anything.")
@click.option("--dry-run", is_flag=True, help="With --release: print the plan; change nothing.")
@pass_state
def rollback(state: _State, version: str | None, release: str | None, record_only: bool,
             dry_run: bool) -> int:
    """Run a task's undo step (or those of a --release) and mark it reverted (pending again)."""
    from afterparty.errors import UsageError
    from afterparty.executor import Executor
    from afterparty.states import State

    if (version is None) == (release is None):
        raise UsageError("name the task to roll back, or give --release RELEASE (not both)")
    if dry_run and release is None:
        raise UsageError("--dry-run shows the plan of a --release")
    session = state.session()
    try:
        printer = RunPrinter(quiet=False, command=session.settings.command,
                             log_format=state.log_format)
        if release is not None:
            from afterparty.release_rollback import rollback_release

            done = rollback_release(session, printer, release, record_only, dry_run)
        else:
            assert version is not None
            outcome = Executor(session, printer).rollback(version, record_only)
    finally:
        session.close()
    if release is not None:
        print_release_rollback(done, session.settings.command)
        return done.exit_code
    if record_only:
        click.echo(f"{outcome.version} {outcome.name}: marked reverted; the next run runs it again")
    return 0 if outcome.state is State.REVERTED else 1


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8765, show_default=True, help="Port to listen on.")
@click.option("--no-auth", is_flag=True,
              help="Serve without users (only with --host 127.0.0.1 or localhost).")
@pass_state
def web(state: _State, host: str, port: int, no_auth: bool) -> None:
    """Serve the web console (needs afterparty[web]; see README "Web console")."""
    from afterparty.errors import ConfigError

    try:
        from afterparty.web.server import serve
    except ImportError as exc:
        raise ConfigError(f"the web console needs {exc.name}: pip install 'afterparty[web]'") from None
    timeout = state.options.get("connect_timeout")
    # Under manage.py or flask, the records are read through the framework's connection.
    serve(state.settings(), host, port, no_auth, 5.0 if timeout is None else float(timeout),
          state.framework.session if state.framework is not None else None)


def main(argv: list[str] | None = None, prog_name: str = "afterparty",
         framework: Framework | None = None) -> None:
    """Entry point: run the command and exit with the documented code.

    ``manage.py afterparty`` and ``flask afterparty`` come here too, with their ``framework``.
    """
    args = sys.argv[1:] if argv is None else argv
    verbose = "-v" in args or "--verbose" in args
    try:
        code = cli.main(args=args, prog_name=prog_name, standalone_mode=False, obj=framework)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.exceptions.Abort:
        code = 130
    except AfterpartyError as exc:
        _print_error(exc, verbose, exc.command or command_name(prog_name))
        code = exc.exit_code
    except OSError as exc:
        # A file afterparty must read or write: a tasks directory it may not write, a full disk.
        if verbose:
            _print_traceback(exc)
        where = f" {exc.filename!r}" if exc.filename else ""
        click.echo(f"afterparty: error: cannot use{where}: {exc.strerror or exc}; check that it "
                   "exists and that you may read and write it", err=True)
        code = 2
    except StoppedBySignal as exc:
        click.echo(f"afterparty: stopped by signal {exc.signum}; the current task was rolled "
                   "back and recorded interrupted", err=True)
        code = 128 + exc.signum
    except KeyboardInterrupt:
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


def _print_traceback(exc: BaseException) -> None:
    import traceback

    from afterparty.backends.url import redact

    click.echo(redact("".join(traceback.format_exception(exc))), err=True, nl=False)


def _print_error(exc: AfterpartyError, verbose: bool, command: str = "afterparty") -> None:
    from afterparty.backends.url import redact
    from afterparty.printing import for_command

    if verbose:
        _print_traceback(exc)
    if isinstance(exc, TaskFileError) and len(exc.problems) > 1:
        click.echo(f"afterparty: error: {len(exc.problems)} problems in task files "
                   "(nothing was run):", err=True)
        for problem in exc.problems:
            click.echo(f"  {for_command(str(problem), command)}", err=True)
        return
    # Every message is built without passwords; this is the last guard for a driver's text.
    click.echo(f"afterparty: error: {for_command(redact(str(exc)), command)}", err=True)
