"""What the command line prints: run progress (a line per task, the task's own output as it
comes, the question for a human step, the summary), the status table, a task's history and
what decisions changed."""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING

import click

if TYPE_CHECKING:
    from afterparty.decisions import Decision
    from afterparty.loader import TaskFile
    from afterparty.records import Attempt
    from afterparty.report import TaskStatus
    from afterparty.results import RunResult, TaskOutcome

# The longest error shown on a task's line; `show` has the whole (stored) error.
SUMMARY_LIMIT = 500


class RunPrinter:
    """Prints the runner's progress: a line per task and the task's own output, live."""

    def __init__(self, quiet: bool, may_ask: bool = False) -> None:
        self.quiet = quiet
        self.may_ask = may_ask
        # Task output goes to the real terminal: sys.stdout is captured while a task runs.
        self.out: IO[str] = sys.stderr if quiet else sys.stdout
        self.err: IO[str] = sys.stderr

    def waiting_for_lock(self, holder: str | None) -> None:
        print_waiting(holder)

    def task_started(self, task_file: TaskFile, description: str) -> None:
        """Nothing: the task's line comes when it ends, after anything it printed."""

    def task_output(self, text: str) -> None:
        self._write(text)

    def task_finished(self, outcome: TaskOutcome) -> None:
        if self.quiet:
            return
        line = f"{outcome.version} {outcome.name} {outcome.state} in {outcome.duration:.2f}s"
        if outcome.error:
            from afterparty.records import error_summary

            summary = error_summary(outcome.error) or ""
            if len(summary) > SUMMARY_LIMIT:  # a 20 MB message belongs in `show`, not the deploy log
                summary = f"{summary[:SUMMARY_LIMIT]}... (cut; afterparty show {outcome.version})"
            line += f": {summary}"
        self._write(line + "\n")

    def task_waiting(self, task_file: TaskFile, reason: str) -> None:
        if not self.quiet:
            self._write(f"{task_file.version} {task_file.name} waiting: {reason}\n")

    def _write(self, text: str) -> None:
        """Show text that comes from a task. What the terminal's encoding cannot show (an emoji
        under LC_ALL=C, a lone surrogate from undecodable bytes) is shown escaped: failing there
        would fail the task, or stop the run, over how its output looks."""
        try:
            self.out.write(text)
        except UnicodeEncodeError:
            encoding = getattr(self.out, "encoding", None) or "utf-8"
            self.out.write(text.encode(encoding, "backslashreplace").decode(encoding))
        self.out.flush()

    def task_retrying(self, task_file: TaskFile, delay: float) -> None:
        click.echo(f"{task_file.version} {task_file.name} retrying in {delay:g}s", file=self.out)

    def manual_step(self, task_file: TaskFile, instructions: str) -> bool:
        """Show a human step; ask "done?" only at an interactive terminal."""
        click.echo(f"{task_file.version} {task_file.name} awaits a person:", file=self.out)
        for line in instructions.splitlines():
            self._write(f"    {line}\n")
        if self.may_ask and sys.stdin.isatty() and sys.stdout.isatty():
            return self._confirm("done? [y/N]: ")
        return False

    def _confirm(self, question: str) -> bool:
        """Ask until yes or no (Enter and end of input mean no). Not click.confirm: input() misses
        a Ctrl-C that comes just as it starts to read, and then waits for a line; select() here
        lets the signal handler run, so Ctrl-C always ends the run at once."""
        import select

        while True:
            click.echo(question, nl=False, file=self.out)
            while not select.select([sys.stdin], [], [], 0.5)[0]:
                pass
            line = sys.stdin.readline()
            if not line:  # end of input (Ctrl-D)
                click.echo("", file=self.out)
                return False
            answer = line.strip().lower()
            if answer in ("y", "yes", "n", "no", ""):
                return answer in ("y", "yes")
            click.echo("Error: invalid input", file=self.out)


def print_run_summary(result: RunResult, dry_run: bool, took: float) -> None:
    if result.busy_skipped:
        click.echo("another runner holds the lock: skipped (--if-busy skip)")
        return
    if dry_run:
        for task_file in result.planned:
            click.echo(f"would run {task_file.version} {task_file.name}")
        click.echo(f"{len(result.planned)} pending task(s) would run; nothing was changed")
        return
    for version in result.interrupted_found:
        click.echo(f"found {version} left running by a runner that died: marked interrupted")
    if result.held is not None:
        from afterparty.results import held_message

        click.echo(held_message(result.held), err=True)
    if not result.planned and not result.outcomes:
        click.echo("no pending tasks")
        print_awaiting(result)
        return
    parts = [f"{len(result.succeeded)} succeeded"]
    if result.failed:
        parts.append(f"{len(result.failed)} failed")
    if result.waiting:
        parts.append(f"{len(result.waiting)} waiting")
    if result.awaiting:
        parts.append(f"{len(result.awaiting)} awaiting confirmation")
    handled = {o.version for o in result.outcomes} | set(result.waiting) | {
        a.version for a in result.awaiting}
    left = sum(1 for f in result.planned if f.version not in handled)
    if left:
        parts.append(f"{left} still pending")
    click.echo(f"summary: {', '.join(parts)} in {took:.2f}s")
    if result.failed:
        first = result.failed[0]
        click.echo(f"see the error with `afterparty show {first.version}`; "
                   "the next `afterparty run` tries failed tasks again", err=True)
    if result.stopped_by is not None:
        import signal

        click.echo(f"stopped by {signal.Signals(result.stopped_by).name}: "
                   f"{result.stop_note or 'no task had started; nothing was left half-done'}",
                   err=True)
    print_awaiting(result)


def print_awaiting(result: RunResult) -> None:
    for step in result.awaiting:
        whom = step.owner or "a person"
        click.echo(f"awaiting {whom}: {step.version} {step.name}; when it is done: "
                   f"afterparty confirm {step.version}")


def print_waiting(holder: str | None) -> None:
    who = f" ({holder})" if holder else ""
    click.echo(f"waiting: another runner holds the lock{who}", err=True)


def print_status(rows: list[TaskStatus], tasks_dir: str) -> None:
    """The ``status`` table: a line per task, then the count of each state."""
    if not rows:
        click.echo(f"no tasks in {tasks_dir}")
        return
    width = max(len(row.name) for row in rows)
    lines = []
    for row in rows:
        when = (row.last_run_at or row.finished_at or "-")[:19].replace("T", " ")
        line = f"{row.version}  {row.name:<{width}}  {row.state:<11}  {when:<19}"
        if row.file_missing or row.modified or row.reason:
            flags = [flag for flag, on in (("file missing", row.file_missing),
                                            ("modified since it ran", row.modified),
                                            (row.reason, row.reason)) if on]
            line += f"  {', '.join(str(flag) for flag in flags)}"
        lines.append(line.rstrip())
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    lines.append(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    click.echo("\n".join(lines))  # one write: ten thousand echo calls cost more than the rest


def print_attempt(number: int, attempt: Attempt) -> None:
    click.echo("")
    duration = f"{attempt.duration:.2f}s" if attempt.duration is not None else "-"
    click.echo(f"#{number} {attempt.action}: {attempt.state}")
    click.echo(f"  started   {attempt.started_at}")
    click.echo(f"  finished  {attempt.finished_at or '-'}  ({duration})")
    click.echo(f"  by        {attempt.username}@{attempt.host} pid {attempt.pid}, "
               f"environment {attempt.environment}, release {attempt.release_id or '-'}, "
               f"afterparty {attempt.tool_version}")
    if attempt.note:
        click.echo(f"  note      {attempt.note}")
    for title, text in (("error", attempt.error), ("output", attempt.output)):
        if text:
            click.echo(f"  {title}:")
            for line in text.rstrip("\n").splitlines():
                click.echo(f"    {line}")


def print_decisions(decisions: list[Decision], verb: str) -> None:
    for decision in decisions:
        if decision.changed:
            click.echo(f"{decision.version} {decision.name}: {decision.before} -> {decision.after}")
        else:
            click.echo(f"{decision.version} {decision.name}: already {decision.before}, unchanged")
    changed = sum(1 for d in decisions if d.changed)
    click.echo(f"{changed} task(s) {verb}")
