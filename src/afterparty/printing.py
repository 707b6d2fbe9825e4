"""What the command line prints: run progress (a line per task, the task's own output as it
comes, the question for a human step, the summary), the status table, a task's history and
what decisions changed."""

from __future__ import annotations

import re
import sys
from typing import IO, TYPE_CHECKING, Any

import click

from afterparty.states import State

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

    from afterparty.decisions import Decision
    from afterparty.loader import TaskFile
    from afterparty.progress import Ticker
    from afterparty.records import Attempt, Progress
    from afterparty.release_rollback import ReleaseRollback
    from afterparty.report import TaskStatus
    from afterparty.results import Background, RunResult, TaskOutcome
    from afterparty.tick import TickResult

# The longest error shown on a task's line; `show` has the whole (stored) error.
SUMMARY_LIMIT = 500
# The state words, colored at a terminal.
STATE_COLORS = {State.SUCCEEDED.value: "green", State.FAILED.value: "red",
                State.INTERRUPTED.value: "red", State.AWAITING.value: "yellow",
                State.PENDING.value: "yellow", "waiting": "yellow", State.QUEUED.value: "cyan",
                State.RUNNING.value: "cyan", State.PAUSED.value: "yellow",
                State.CANCELLED.value: "red"}
# Hints name the command the user runs (`flask afterparty`, `python manage.py afterparty`).
_HINT = r"(?<![\w./-])afterparty (?=(init|new|run|status|show|check|mark-done|skip|forget|resolve|" \
        r"confirm|rollback|verify|web|pause|resume|cancel)\b)"


def for_command(text: str, command: str) -> str:
    """``text`` with every ``afterparty <command>`` hint spelled as the user's command. The
    library's messages say ``afterparty ...`` (right for the shell command and the Python API);
    the command line says what was typed. A hint already spelled so is left as it is."""
    if command == "afterparty":
        return text
    return re.sub(f"{re.escape(command)} |{_HINT}", lambda _: f"{command} ", text)


def use_color(stream: IO[str]) -> bool:
    """Color for a terminal, unless --no-color or NO_COLOR says otherwise (--color forces it)."""
    import os

    context = click.get_current_context(silent=True)
    if context is not None and context.color is not None:
        return context.color
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class RunPrinter:
    """Prints the runner's progress: a line when a task starts and one when it ends, the task's
    own output live (its stdout on stdout, its stderr on stderr), and while a task runs an
    elapsed-time indicator at a terminal or a heartbeat line in a log."""

    def __init__(self, quiet: bool, may_ask: bool = False, command: str = "afterparty",
                 color: bool | None = None, log_format: str = "text",
                 on_work: Callable[[], None] | None = None) -> None:
        import threading

        self.quiet = quiet
        self.may_ask = may_ask
        self.command = command
        self.log_format = log_format
        #: Called when the run has work, before anything of it happens (logs are shown then).
        self.on_work = on_work
        # Task output goes to the real terminal: sys.stdout is captured while a task runs.
        self.out: IO[str] = sys.stderr if quiet else sys.stdout
        self.err: IO[str] = sys.stderr
        self.color = use_color(self.out) if color is None else color
        self.total: int | None = None
        self.numbers: dict[str, int] = {}
        #: What every JSON log line carries besides the record (environment, release).
        self.log_fields: dict[str, object] = {}
        # The ticker thread and the main thread write to the same terminal.
        self._lock = threading.RLock()
        self._indicator_shown = False
        self._ticker: Ticker | None = None

    def run_planned(self, count: int) -> None:
        if self.on_work is not None:
            self.on_work()
        self.total = count

    def waiting_for_lock(self, holder: str | None) -> None:
        if self.on_work is not None:
            self.on_work()
        self._clear()
        print_waiting(holder)

    def _number(self, version: str) -> str:
        number = self.numbers.setdefault(version, len(self.numbers) + 1)
        return f"[{number}/{self.total}] " if self.total else ""

    def task_started(self, task_file: TaskFile, description: str) -> None:
        label = f"{task_file.version} {task_file.name}"
        if not self.quiet:
            self._write(f"{self._number(task_file.version)}{label} ...\n")
        self._stop_ticker()
        from afterparty.progress import Ticker

        self._ticker = Ticker(self, label, describe_progress)
        self._ticker.start()

    def task_output(self, text: str) -> None:
        self._write(text)

    def task_progress(self, progress: Progress) -> None:
        """A long task's report: on the live line at a terminal, in the heartbeat in a log (put
        into words there, at most once a second: a task may report every row)."""
        if self._ticker is not None:
            self._ticker.progress = progress

    def task_error_output(self, text: str) -> None:
        """What a task wrote to its stderr: it stays on stderr."""
        self._write(text, self.err)

    def task_log(self, record: logging.LogRecord) -> None:
        """A log record from the task (or the application while the task runs): a text line
        with the task's output, or a JSON line on stderr with --log-format json."""
        from afterparty.capture import json_log_line, text_log_line

        if self.log_format == "json":
            self._write(json_log_line(record, self.log_fields) + "\n", self.err)
        else:
            self._write(text_log_line(record, own=record.name.startswith("afterparty.task.")) + "\n")

    def task_finished(self, outcome: TaskOutcome) -> None:
        self._stop_ticker()
        if self.quiet:
            return
        state = self.style(str(outcome.state), STATE_COLORS.get(str(outcome.state)))
        line = f"{outcome.version} {outcome.name} {state} in {outcome.duration:.2f}s"
        if outcome.error:
            from afterparty.records import error_summary

            summary = error_summary(outcome.error) or ""
            if len(summary) > SUMMARY_LIMIT:  # a 20 MB message belongs in `show`, not the deploy log
                summary = (f"{summary[:SUMMARY_LIMIT]}... "
                           f"(cut; {self.command} show {outcome.version})")
            line += f": {summary}"
        self._write(line + "\n")

    def task_sent_to_worker(self, task_file: TaskFile, state: State) -> None:
        """A background task: sent to a Celery worker (queued), or running on one already."""
        if not self.quiet:
            said = "queued for a Celery worker" if state is State.QUEUED else "running on a worker"
            self._write(f"{self._number(task_file.version)}{task_file.version} {task_file.name} "
                        f"{self.style(said, STATE_COLORS.get(str(state)))}\n")

    def task_waiting(self, task_file: TaskFile, reason: str) -> None:
        if not self.quiet:
            self._number(task_file.version)
            self._write(f"{task_file.version} {task_file.name} {self.style('waiting', 'yellow')}: "
                        f"{reason}\n")

    def style(self, text: str, fg: str | None) -> str:
        return click.style(text, fg=fg) if self.color and fg else text

    def close(self) -> None:
        """Stop the indicator of a task whose end never came (the run stopped with an error)."""
        self._stop_ticker()

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        self._clear()

    def _clear(self) -> None:
        """Take the elapsed-time indicator off the terminal before anything else is written."""
        with self._lock:
            if self._indicator_shown:
                self._indicator_shown = False
                self.err.write("\r\033[K")
                self.err.flush()

    def show_indicator(self, text: str) -> None:
        # A timeout: the main thread may hold the lock forever if a signal stopped it mid-write.
        if self._lock.acquire(timeout=1):
            try:
                self._indicator_shown = True
                self.err.write(f"\r{text}\033[K")
                self.err.flush()
            finally:
                self._lock.release()

    def heartbeat(self, text: str) -> None:
        if self._lock.acquire(timeout=1):
            try:
                self._write(text + "\n")
            finally:
                self._lock.release()

    def _write(self, text: str, stream: IO[str] | None = None) -> None:
        """Show text that comes from a task. What the terminal's encoding cannot show (an emoji
        under LC_ALL=C, a lone surrogate from undecodable bytes) is shown escaped: failing there
        would fail the task, or stop the run, over how its output looks."""
        stream = stream or self.out
        with self._lock:
            self._clear()
            try:
                stream.write(text)
            except UnicodeEncodeError:
                encoding = getattr(stream, "encoding", None) or "utf-8"
                stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
            stream.flush()

    def task_retrying(self, task_file: TaskFile, delay: float) -> None:
        click.echo(f"{task_file.version} {task_file.name} retrying in {delay:g}s", file=self.out)

    def manual_step(self, task_file: TaskFile, instructions: str) -> bool:
        """Show a human step; ask "done?" only at an interactive terminal."""
        self._number(task_file.version)
        self._write(f"{task_file.version} {task_file.name} {self.style('awaits a person', 'yellow')}:\n")
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


def print_run_summary(result: RunResult, dry_run: bool, took: float,
                      command: str = "afterparty") -> None:
    if result.busy_skipped:
        click.echo("another runner holds the lock: skipped (--if-busy skip)")
        return
    if dry_run:
        to_queue = {task.version for task in result.background}
        for task_file in result.planned:
            what = "queue for a Celery worker" if task_file.version in to_queue else "run"
            click.echo(f"would {what} {task_file.version} {task_file.name}")
        for version, reason in result.waiting.items():
            click.echo(f"would wait {version}: {reason}")
        waits = f", {len(result.waiting)} would wait" if result.waiting else ""
        click.echo(f"{len(result.planned)} pending task(s) would run{waits}; nothing was changed")
        return
    for version in result.interrupted_found:
        click.echo(f"found {version} left running by a runner that died: marked interrupted")
    if result.held is not None:
        from afterparty.results import held_message

        click.echo(held_message(result.held, command), err=True)
    if not result.planned and not result.outcomes:
        click.echo("no pending tasks")
        print_notices(result, command, alone=True)
        print_awaiting(result, command)
        print_rolled_back(result, command)
        return
    parts = [f"{len(result.succeeded)} {_styled(State.SUCCEEDED, 'green' if result.succeeded else None)}"]
    if result.failed:
        parts.append(f"{len(result.failed)} {_styled(State.FAILED, 'red')}")
    if result.waiting:
        parts.append(f"{len(result.waiting)} {_styled('waiting', 'yellow')}")
    if result.awaiting:
        parts.append(f"{len(result.awaiting)} {_styled(State.AWAITING, 'yellow')} confirmation")
    queued = [b for b in result.background if b.state is State.QUEUED]
    if queued:
        parts.append(f"{len(queued)} queued for Celery workers ({', '.join(b.version for b in queued)})")
    if len(queued) < len(result.background):
        parts.append(f"{len(result.background) - len(queued)} running on workers")
    handled = {o.version for o in result.outcomes} | set(result.waiting) | {
        a.version for a in result.awaiting} | {b.version for b in result.background}
    left = sum(1 for f in result.planned if f.version not in handled)
    if left:
        parts.append(f"{left} still pending")
    if result.notices_sent:
        parts.append(f"{result.notices_sent} notice(s) sent")
    click.echo(f"summary: {', '.join(parts)} in {took:.2f}s")
    print_notices(result, command)
    if result.failed:
        first = result.failed[0]
        click.echo(f"see the error with `{command} show {first.version}`; "
                   f"the next `{command} run` tries failed tasks again", err=True)
    if result.stopped_by is not None:
        import signal

        click.echo(f"stopped by {signal.Signals(result.stopped_by).name}: "
                   f"{result.stop_note or 'no task had started; nothing was left half-done'}",
                   err=True)
    print_awaiting(result, command)
    print_rolled_back(result, command)


def print_rolled_back(result: RunResult, command: str = "afterparty") -> None:
    """One line per release a deploy of an older one rolled back."""
    for release, tasks in result.rolled_back.items():
        click.echo(f"{_styled('rolled back', 'yellow')}: release {release} was deployed here after "
                   f"the release deployed now, which lacks the files of {len(tasks)} task(s) that "
                   f"ran in it ({', '.join(tasks)}); settle it with `{command} rollback --release "
                   f"{release}` (see --dry-run)")


def print_notices(result: RunResult, command: str = "afterparty", alone: bool = False) -> None:
    """The held notices a run sent (``alone``: when no task ran; a summary counts them
    otherwise), and on stderr each that no service took."""
    if alone and result.notices_sent:
        click.echo(f"sent {result.notices_sent} held notice(s)")
    for problem in result.notices_undelivered:
        click.echo(f"notice of {problem}; the next `{command} run` or `{command} tick` tries "
                   "again", err=True)


def print_release_rollback(done: ReleaseRollback, command: str = "afterparty") -> None:
    """What ``rollback --release`` did (after the lines of the undo steps it ran), or would do."""
    would = "would " if done.dry_run else ""
    if done.dry_run:
        for step in done.steps:
            click.echo(step.plan_line(command))
    else:
        for step in done.left:
            why = "it has no undo step" if step.problem is None else \
                f"its source cannot be loaded ({step.problem})"
            click.echo(f"left {step.label} ({step.before}): {why}; `{command} rollback --release "
                       f"{done.release} --record-only` marks it reverted once it is undone by hand")
        for label in done.recorded:
            click.echo(f"{label}: marked reverted")
    for notice in done.dropped:
        click.echo(f"{'would drop' if done.dry_run else 'dropped'} the notice of {notice.version} held since "
                   f"{notice.created_at[:19].replace('T', ' ')}: {notice.message}")
    for label in done.never_ran:
        click.echo(f"{label} waited for release {done.release} to stay live: it {would or 'will '}"
                   "never run for this deployment")
    if done.dry_run:
        click.echo("nothing was changed")
        return
    undone = sum(1 for o in done.outcomes if o.state is State.REVERTED)
    parts = [f"{undone} undone"] + ([f"{len(done.recorded)} marked reverted"] if done.recorded else []) \
        + ([f"{len(done.left)} left"] if done.left else []) \
        + [f"{len(done.dropped)} notice(s) dropped"]
    if done.failed:
        click.echo(f"release {done.release}: the undo step of {done.failed[0].version} failed; "
                   f"older tasks were not rolled back (`{command} show {done.failed[0].version}`, "
                   "then run this again)", err=True)
        return
    click.echo(f"release {done.release} rolled back: {', '.join(parts)}")


def print_tick(result: TickResult, command: str = "afterparty") -> None:
    """What a tick did, after the lines of the tasks it ran: its summary, and on stderr each
    notice no service took."""
    for reminder in result.reminders:
        click.echo(reminder.line())
    print_notices(result.run, command)
    click.echo(result.summary())


def print_background_wait(count: int) -> None:
    click.echo(f"waiting for {count} background task(s) on Celery workers (Ctrl-C stops waiting; "
               "they go on)", err=True)


def print_background_outcome(task: Background, command: str = "afterparty") -> None:
    """How a background task ended, once ``run --wait-background`` saw it end."""
    state = _styled(str(task.state), STATE_COLORS.get(str(task.state)))
    took = f" in {task.duration:.2f}s" if task.duration is not None else ""
    line = f"{task.version} {task.name} {state} on worker {task.worker or '?'}{took}"
    if task.state is State.INTERRUPTED and task.hold:
        line += f": it is on_interrupt=\"hold\"; choose with `{command} resolve {task.version}`"
    elif task.state is State.INTERRUPTED:
        line += ": its worker is gone; it is sent to a worker again"
    elif task.error:
        line += f": {task.error}"
    click.echo(line)


def print_followed(outcomes: list[TaskOutcome]) -> None:
    """What ran in the same command once the background tasks it waited on had ended."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[str(outcome.state)] = counts.get(str(outcome.state), 0) + 1
    click.echo("after the background tasks: " + ", ".join(f"{n} {s}" for s, n in counts.items()))


def print_awaiting(result: RunResult, command: str = "afterparty") -> None:
    for step in result.awaiting:
        whom = step.owner or "a person"
        click.echo(f"{_styled(State.AWAITING, 'yellow')} {whom}: {step.version} {step.name}; "
                   f"when it is done: {command} confirm {step.version}")


def _styled(text: str, fg: str | None) -> str:
    """A state word, colored when the command line's output is (click.echo strips it else)."""
    return click.style(text, fg=fg) if fg and use_color(sys.stdout) else text


def print_waiting(holder: str | None) -> None:
    who = f" ({holder})" if holder else ""
    click.echo(f"waiting: another runner holds the lock{who}", err=True)


def print_status(rows: list[TaskStatus], tasks_dir: str, command: str = "afterparty") -> None:
    """The ``status`` table: a line per task, then the count of each state."""
    if not rows:
        click.echo(f"no tasks in {tasks_dir}")
        return
    width = max(len(row.name) for row in rows)
    color = use_color(sys.stdout)
    lines = []
    for row in rows:
        when = (row.last_run_at or row.finished_at or "-")[:19].replace("T", " ")
        state = f"{row.state:<11}"
        if color and str(row.state) in STATE_COLORS:
            state = click.style(state, fg=STATE_COLORS[str(row.state)])
        line = f"{row.version}  {row.name:<{width}}  {state}  {when:<19}"
        shows_progress = row.progress is not None and not State(row.state).is_done
        if row.file_missing or row.modified or row.reason or shows_progress:
            flags = [flag for flag, on in (
                ("file missing", row.file_missing), ("modified since it ran", row.modified),
                (row.reason, row.reason),
                (shows_progress and describe_progress(row.progress or {},
                                                      row.state == State.RUNNING and not row.gone),
                 shows_progress)) if on]
            line += f"  {for_command(', '.join(str(flag) for flag in flags), command)}"
        lines.append(line.rstrip())
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    lines.append(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    click.echo("\n".join(lines))  # one write: ten thousand echo calls cost more than the rest


def describe_progress(progress: dict[str, Any], running: bool = True) -> str:
    """A long task's progress in a few words (``Progress.shown()``): ``45% (4,500/10,000),
    380/s, about 15 s left`` while it runs, ``reached 45% (4,500/10,000)`` after."""
    done, total = progress["done"], progress["total"]
    amount = f"{_number_text(done)}/{_number_text(total)}" if total is not None else _number_text(done)
    parts = [f"{progress['percent']:.0f}% ({amount})" if progress.get("percent") is not None
             else amount]
    if not running:
        parts[0] = f"reached {parts[0]}"
    elif progress.get("rate"):
        parts.append(f"{_number_text(progress['rate'])}/s")
    if running and progress.get("seconds_left") is not None and progress["percent"] != 100:
        parts.append(f"about {_duration_text(progress['seconds_left'])} left")
    text = ", ".join(parts)
    return f"{text}: {progress['note']}" if progress.get("note") else text


def _number_text(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:,.0f}" if value >= 10 or float(value).is_integer() else f"{value:.1f}"


def _duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def print_long_task(row: TaskStatus) -> None:
    """``show``: a long task's last progress report and its checkpoint."""
    import json

    if row.progress is not None:
        worker = f" on {row.progress['worker']}" if row.progress.get("worker") else ""
        running = row.state == State.RUNNING.value
        click.echo(f"  progress: {describe_progress(row.progress, running)} "
                   f"(reported {str(row.progress['updated_at'])[:19].replace('T', ' ')}{worker})")
    if row.checkpoint is not None:
        click.echo(f"  checkpoint: {json.dumps(row.checkpoint)}")


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
        if decision.asked:
            click.echo(f"{decision.version} {decision.name}: {decision.before}; asked to stop at its "
                       f"next batch or progress report, then it is {decision.after}")
        elif decision.changed:
            click.echo(f"{decision.version} {decision.name}: {decision.before} -> {decision.after}")
        else:
            click.echo(f"{decision.version} {decision.name}: already {decision.before}, unchanged")
    changed = sum(1 for d in decisions if d.changed)
    click.echo(f"{changed} task(s) {verb}")
