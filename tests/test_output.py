"""What a person or a log sees while afterparty runs: progress, color, streams, options after the
command, completion, JSON shapes, logging, and hints naming the command the user typed."""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Project
from examples import Example, copy_example, python
from test_notifications import Receiver

FIRST, SECOND = "20260101000001", "20260101000002"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
DOCS = Path(__file__).resolve().parent.parent / "docs"


def waits_for_go(started: Path, go: Path) -> str:
    """A task body that says it started, then works until the test lets it finish."""
    return f"""
        import os, pathlib, time
        pathlib.Path({str(started)!r}).write_text("started")
        deadline = time.monotonic() + 60
        while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:
            time.sleep(0.05)
    """


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def run_in_terminal(project: Project, *args: str, until: str | None = None,
                    then: Callable[[], None] | None = None,
                    extra_env: dict[str, str] | None = None) -> str:
    """Run afterparty with a real pseudo-terminal as stdin, stdout and stderr; when ``until``
    has been shown, call ``then``. Returns everything the terminal showed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(project.command(*args), cwd=project.root,
                               env={**project.env, **(extra_env or {})},
                               stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
            if until is not None and until.encode() in seen and then is not None:
                then()
                then = None
            if process.poll() is not None and not ready:
                break
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    return seen.decode(errors="replace")


# Progress -------------------------------------------------------------------------------------

def test_a_line_says_which_task_starts_before_it_ends(sqlite_project: Project, tmp_path: Path) -> None:
    """A deploy log shows `[1/2] <version> <name> ...` while the task is still working, then a
    heartbeat while it runs (every AFTERPARTY_HEARTBEAT_SECONDS), then its outcome."""
    started, go, log = tmp_path / "started", tmp_path / "go", tmp_path / "deploy.log"
    sqlite_project.write_task(FIRST, "call_partner_api", waits_for_go(started, go))
    sqlite_project.write_task(SECOND, "second", "print('second ran')")
    process = sqlite_project.popen_logged("run", log=log,
                                          extra_env={"AFTERPARTY_HEARTBEAT_SECONDS": "0.3"})
    try:
        wait_for(started.exists, "the task to start")
        wait_for(lambda: "still running after" in log.read_text(), "a heartbeat line")
        while_running = log.read_text()
        go.write_text("go")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert f"[1/2] {FIRST} call_partner_api ...\n" in while_running
    assert "succeeded" not in while_running
    assert f"{FIRST} call_partner_api still running after" in while_running
    lines = log.read_text().splitlines()
    assert lines.index(f"[2/2] {SECOND} second ...") < lines.index("second ran")
    assert any(line.startswith(f"{SECOND} second succeeded in ") for line in lines)
    assert "\x1b[" not in log.read_text()  # not a terminal: no color, no indicator


def test_the_summary_gives_the_run_wall_time(sqlite_project: Project) -> None:
    """The summary's duration covers the whole run, not only the tasks' own time."""
    sqlite_project.write_task(FIRST, "slow", "import time\ntime.sleep(1.5)")
    sqlite_project.write_task(SECOND, "slow_too", "import time\ntime.sleep(1.0)")
    began = time.monotonic()
    result = sqlite_project.cli("run")
    took = time.monotonic() - began
    assert result.code == 0, result.both
    summary = float(re.search(r"summary: 2 succeeded in ([0-9.]+)s", result.out).group(1))  # type: ignore[union-attr]
    assert 2.5 <= summary <= took


def test_at_a_terminal_a_long_task_shows_its_elapsed_time_and_state_words_are_colored(
        sqlite_project: Project, tmp_path: Path) -> None:
    """After 2 s a line on the terminal counts the seconds; it is cleared before the task's own
    output and before the outcome, which is green for succeeded and red for failed."""
    started, go = tmp_path / "started", tmp_path / "go"
    sqlite_project.write_task(FIRST, "long_call", waits_for_go(started, go) + "\n        print('done now')")
    sqlite_project.write_task(SECOND, "breaks", "raise RuntimeError('partner said no')")
    shown = run_in_terminal(sqlite_project, "run", until="long_call running for 3s",
                            then=lambda: go.write_text("go"))
    assert f"\r{FIRST} long_call running for 2s\x1b[K" in shown
    assert "\r\x1b[K" + "done now" in shown  # the indicator is cleared before the output
    assert "still running after" not in shown  # a terminal gets the indicator, not heartbeats
    assert f"{FIRST} long_call \x1b[32msucceeded\x1b[0m in" in shown
    assert f"{SECOND} breaks \x1b[31mfailed\x1b[0m in" in shown
    assert "1 \x1b[31mfailed\x1b[0m" in shown  # in the summary too


@pytest.mark.parametrize("how", [("--no-color",), ("status", "--no-color"), ("NO_COLOR",)],
                         ids=["--no-color", "--no-color after the command", "NO_COLOR"])
def test_no_color_at_a_terminal_when_asked(sqlite_project: Project, how: tuple[str, ...]) -> None:
    sqlite_project.write_task(FIRST, "quick")
    assert sqlite_project.cli("run").code == 0
    if how == ("NO_COLOR",):
        shown = run_in_terminal(sqlite_project, "status", extra_env={"NO_COLOR": "1"})
    elif how[0] == "status":
        shown = run_in_terminal(sqlite_project, *how)
    else:
        shown = run_in_terminal(sqlite_project, *how, "status")
    assert "succeeded" in shown and "\x1b[" not in shown
    assert "\x1b[32msucceeded" in run_in_terminal(sqlite_project, "status")


def test_color_through_a_pipe_only_when_forced(sqlite_project: Project) -> None:
    sqlite_project.write_task(FIRST, "quick")
    plain = sqlite_project.cli("run")
    assert "succeeded" in plain.out and "\x1b[" not in plain.both
    sqlite_project.cli("forget", FIRST)
    forced = sqlite_project.cli("run", "--color")
    assert f"{FIRST} quick \x1b[32msucceeded\x1b[0m" in forced.out
    assert "\x1b[32msucceeded" in sqlite_project.cli("--color", "status").out


# Streams --------------------------------------------------------------------------------------

def test_a_task_stderr_stays_on_stderr_and_hints_go_to_stderr(sqlite_project: Project) -> None:
    """What a task prints to stderr stays stderr (and is still kept with the attempt);
    results on stdout, the hint about what to do next on stderr."""
    sqlite_project.write_task(FIRST, "noisy", """
        import sys
        print("to stdout")
        print("to stderr", file=sys.stderr)
        raise RuntimeError("broken")
    """)
    result = sqlite_project.cli("run")
    assert result.code == 1
    assert "to stdout" in result.out and "to stderr" not in result.out
    assert "to stderr" in result.err and "to stdout" not in result.err
    assert f"{FIRST} noisy failed" in result.out and "summary:" in result.out
    assert f"see the error with `afterparty show {FIRST}`" in result.err
    output = sqlite_project.cli("show", FIRST).out
    assert "to stdout" in output and "to stderr" in output


# Global options after the command -------------------------------------------------------------

def test_global_options_work_after_the_command(sqlite_project: Project, tmp_path: Path) -> None:
    """`afterparty run --env production` and `afterparty status --database-url URL`: what
    people type. Given in both places, the command's own wins."""
    sqlite_project.write_task(FIRST, "production_only", "print('ran in production')",
                              options='environments=["production"]')
    assert "ran in production" not in sqlite_project.cli("run").out
    ran = sqlite_project.cli("--env", "staging", "run", "--env", "production")
    assert ran.code == 0 and "ran in production" in ran.out, ran.both
    records = json.loads(sqlite_project.cli("status", "--json").out)
    assert records["tasks"][0]["state"] == "succeeded"

    other = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    elsewhere = sqlite_project.cli("status", "--database-url", other, "--json")
    assert elsewhere.code == 0, elsewhere.both
    assert json.loads(elsewhere.out)["tasks"][0]["state"] == "pending"
    assert "other.sqlite3" in json.loads(elsewhere.out)["database"]
    help_text = sqlite_project.cli("show", "--help").out
    assert "--database-url" in help_text and "--env" in help_text


# Shell completion -----------------------------------------------------------------------------

def test_shell_completion_offers_versions_and_names_without_the_database(
        sqlite_project: Project) -> None:
    """Completing `afterparty show <TAB>` reads the tasks directory only: with a database that
    cannot be reached it answers at once."""
    sqlite_project.write_task(FIRST, "notify_issue_111")
    sqlite_project.write_task(SECOND, "restart_search")

    def complete(words: str) -> list[str]:
        done = subprocess.run(
            sqlite_project.command(), cwd=sqlite_project.root,
            env={**sqlite_project.env, "_AFTERPARTY_COMPLETE": "bash_complete",
                 "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1),
                 "AFTERPARTY_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"},
            capture_output=True, text=True, timeout=20, check=False)
        return [line.split(",", 1)[1] for line in done.stdout.splitlines()]

    assert complete("afterparty show ") == [FIRST, SECOND, "notify_issue_111", "restart_search"]
    assert complete("afterparty run --env production re") == ["restart_search"]
    assert complete("afterparty confirm 2026010100000") == [FIRST, SECOND]
    assert "_AFTERPARTY_COMPLETE=bash_source afterparty" in (DOCS / "reference" / "commands.md").read_text()


# JSON -----------------------------------------------------------------------------------------

def test_every_json_object_carries_its_schema_version(sqlite_project: Project) -> None:
    sqlite_project.write_task(FIRST, "quick")
    for args in (("run", "--json"), ("status", "--json"), ("show", FIRST, "--json")):
        result = sqlite_project.cli(*args)
        assert result.code == 0, result.both
        assert json.loads(result.out)["schema"] == 1, args
    assert '"schema": 1' in (DOCS / "reference" / "json.md").read_text()


# Logging --------------------------------------------------------------------------------------

APP_LOGGING = """
import logging
# What an application's logging configuration does when it is imported (Django's LOGGING,
# Flask's create_app, a service's logging setup): a handler of its own on the root logger.
_handler = logging.FileHandler({log!r})
_handler.setFormatter(logging.Formatter("%(name)s|%(levelname)s|%(message)s"))
logging.getLogger().addHandler(_handler)
logging.getLogger().setLevel(logging.INFO)
"""


def test_task_logs_reach_the_application_handlers_and_app_logs_are_kept_with_the_attempt(
        sqlite_project: Project, tmp_path: Path) -> None:
    """ctx.log propagates to the application's handlers; what the application's own loggers
    say while the task runs is kept with the attempt; the command line shows each line once,
    with its time."""
    app_log = tmp_path / "app.log"
    sqlite_project.write_task(FIRST, "tell_billing", """
        ctx.log.info("telling billing")
        logging.getLogger("shop.billing").warning("billing API slow")
    """, header=APP_LOGGING.format(log=str(app_log)))
    result = sqlite_project.cli("run")
    assert result.code == 0, result.both
    handled = app_log.read_text().splitlines()
    assert f"afterparty.task.{FIRST}_tell_billing|INFO|telling billing" in handled
    assert "shop.billing|WARNING|billing API slow" in handled
    assert result.both.count("telling billing") == 1 and result.both.count("billing API slow") == 1
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO telling billing$", result.out, re.M)
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARNING shop\.billing: billing API slow$",
                     result.out, re.M)
    kept = json.loads(sqlite_project.cli("show", FIRST, "--json").out)["attempts"][0]["output"]
    assert "INFO telling billing" in kept and "WARNING shop.billing: billing API slow" in kept
    # Outside the task, the application's logger is the application's again.
    assert logging.getLogger("shop.billing").handlers == []


@pytest.mark.parametrize("how", ["flag", "env"])
def test_json_logs_one_object_per_line_on_stderr(sqlite_project: Project, how: str) -> None:
    sqlite_project.write_task(FIRST, "tell_billing", """
        ctx.log.info("telling billing")
        logging.getLogger("shop.billing").warning("billing API slow")
        print("a plain print")
    """, header="import logging")
    env = {"AFTERPARTY_RELEASE": "v42"}
    if how == "flag":
        result = sqlite_project.cli("run", "--log-format", "json", extra_env=env)
    else:
        result = sqlite_project.cli("run", extra_env={**env, "AFTERPARTY_LOG_FORMAT": "json"})
    assert result.code == 0, result.both
    records = [json.loads(line) for line in result.err.splitlines()]
    assert [(r["logger"], r["level"], r["message"]) for r in records] == [
        (f"afterparty.task.{FIRST}_tell_billing", "INFO", "telling billing"),
        ("shop.billing", "WARNING", "billing API slow")]
    for record in records:
        assert record["environment"] == "development" and record["release"] == "v42"
        assert (record["version"], record["name"], record["attempt"]) == (FIRST, "tell_billing", 1)
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", record["time"])
    assert "a plain print" in result.out and "telling billing" not in result.out


def test_runner_log_records_are_json_too(sqlite_project: Project) -> None:
    """A runner's own record (a notification that could not be sent) is a JSON line as well."""
    sqlite_project.write_task(FIRST, "breaks", "raise RuntimeError('no')")
    result = sqlite_project.cli("run", "--log-format", "json",
                                extra_env={"AFTERPARTY_NOTIFY": "json://127.0.0.1:9/hook"})
    assert result.code == 1
    records = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
    assert records and all(r["logger"] == "afterparty" for r in records)
    assert any("not delivered" in r["message"] or "not installed" in r["message"] for r in records)


# Hints name the command being run -------------------------------------------------------------

def test_hints_name_plain_afterparty(sqlite_project: Project) -> None:
    missing = sqlite_project.cli("show", "nope")
    assert missing.code == 2 and "see `afterparty status`" in missing.err


@pytest.fixture
def flask_app(tmp_path: Path) -> Example:
    root, env = copy_example("flask_app", tmp_path, None)
    env["FLASK_APP"] = "shop"
    example = Example(root, f"sqlite:///{root / 'instance' / 'shop.sqlite3'}", env,
                      [python(), "-m", "flask"])
    assert example.run("init-db").code == 0
    return example


@pytest.fixture
def django_site(tmp_path: Path) -> Example:
    root, env = copy_example("django_site", tmp_path, None)
    example = Example(root, f"sqlite:///{root / 'db.sqlite3'}", env, [python(), "manage.py"])
    assert example.run("migrate", "--verbosity", "0").code == 0
    return example


@pytest.fixture
def notified() -> Iterator[Receiver]:
    """A webhook receiving the notifications."""
    server = Receiver()
    yield server
    server.server.shutdown()


@pytest.mark.parametrize("framework, command", [("flask", "flask afterparty"),
                                                ("django", "python manage.py afterparty")])
def test_hints_name_the_framework_command(request: pytest.FixtureRequest, framework: str,
                                          command: str, notified: Receiver) -> None:
    """`flask afterparty` and `python manage.py afterparty` users are told to run their own
    command, at the terminal and in notifications: a bare `afterparty` would read a different,
    new SQLite file."""
    app: Example = request.getfixturevalue("flask_app" if framework == "flask" else "django_site")
    app.env["AFTERPARTY_NOTIFY"] = notified.url
    assert app.run("afterparty", "run").code == 0
    app.write_task("20270101000000_breaks.py", "", 'raise RuntimeError("the partner API said no")')
    failed = app.run("afterparty", "run")
    assert failed.code == 1
    assert f"see the error with `{command} show 20270101000000`" in failed.err
    assert f"the next `{command} run` tries failed tasks again" in failed.err
    assert f"{command} resolve" not in failed.both and "`afterparty " not in failed.both
    assert any(f"See it: {command} show 20270101000000" in body
               and f"The next `{command} run` tries it again" in body for body in notified.bodies())

    (app.root / "release_tasks" / "20270101000000_breaks.py").unlink()
    app.write_task("20270101000001_flip_switch.py", "", 'return "Flip the switch"')
    manual = app.root / "release_tasks" / "20270101000001_flip_switch.py"
    manual.write_text(manual.read_text().replace("@task(", "@task(manual=True, "))
    awaiting = app.run("afterparty", "run", "--no-input")
    assert awaiting.code == 0, awaiting.both
    assert f"when it is done: {command} confirm 20270101000001" in awaiting.out
    assert any(f"When it is done: {command} confirm 20270101000001" in body
               for body in notified.bodies())
    status = app.run("afterparty", "status")
    assert f"awaits confirmation: {command} confirm 20270101000001" in status.out
    gate = app.run("afterparty", "verify")
    assert gate.code != 0 and f"`{command} confirm 20270101000001`" in gate.out, gate.both

    missing = app.run("afterparty", "show", "nope")
    assert missing.code == 2 and f"see `{command} status`" in missing.err


def test_a_hint_pasted_as_printed_acts_on_the_same_environment(sqlite_project: Project) -> None:
    """`--env` and `--database-url` given to a command are in every hint it prints (the URL's
    password hidden): a pasted hint confirms where the step awaits, not in the default database."""
    import shlex

    step = sqlite_project.write_task(FIRST, "flip_switch", 'return "Flip the switch"',
                                     options="manual=True")
    assert step.exists()
    staging = sqlite_project.root / "staging.sqlite3"
    given = ("--env", "staging", "--database-url", f"sqlite:///{staging}")
    command = f"afterparty --env staging --database-url sqlite:///{staging}"
    awaiting = sqlite_project.cli("run", *given, "--no-input")
    assert awaiting.code == 0, awaiting.both
    assert f"when it is done: {command} confirm {FIRST}" in awaiting.out
    assert f"awaits confirmation: {command} confirm {FIRST}" in sqlite_project.cli(*given, "status").out
    missing = sqlite_project.cli(*given, "show", "nope")
    assert missing.code == 2 and f"see `{command} status`" in missing.err

    hint = awaiting.out.split("when it is done: ", 1)[1].splitlines()[0]
    pasted = sqlite_project.cli(*shlex.split(hint)[1:], "--note", "flipped")
    assert pasted.code == 0, pasted.both
    assert "awaiting -> succeeded" in pasted.out
    assert not (sqlite_project.root / "afterparty.sqlite3").exists()  # not the default database


def test_a_hint_shows_the_database_url_without_its_password(sqlite_project: Project,
                                                            postgresql_url: str) -> None:
    with_password = postgresql_url.replace("postgresql://root@", "postgresql://root:s3cret@")
    missing = sqlite_project.cli("--database-url", with_password, "show", "nope")
    assert missing.code == 2, missing.both
    hidden = with_password.replace(":s3cret@", ":***@")
    assert f"see `afterparty --database-url '{hidden}' status`" in missing.err
    assert "s3cret" not in missing.both


def test_hints_name_flasks_app_option_and_the_template_the_framework_command(
        flask_app: Example, django_site: Example) -> None:
    """`flask --app shop afterparty ...`: the hints say `--app shop` too; `manage.py afterparty
    new --manual` writes a step that says how to confirm it with manage.py."""
    import shlex

    del flask_app.env["FLASK_APP"]
    flask_app.write_task("20270101000001_flip_switch.py", "", 'return "Flip the switch"')
    manual = flask_app.root / "release_tasks" / "20270101000001_flip_switch.py"
    manual.write_text(manual.read_text().replace("@task(", "@task(manual=True, "))
    awaiting = flask_app.run("--app", "shop", "afterparty", "run", "--no-input")
    assert awaiting.code == 0, awaiting.both
    hint = awaiting.out.split("when it is done: ", 1)[1].splitlines()[0]
    assert hint == "flask --app shop afterparty confirm 20270101000001"
    pasted = flask_app.run(*shlex.split(hint)[1:])
    assert pasted.code == 0 and "awaiting -> succeeded" in pasted.out, pasted.both

    made = django_site.run("afterparty", "new", "call_the_customer", "--manual")
    assert made.code == 0, made.both
    text = (django_site.root / made.out.strip()).read_text()
    assert "Confirm: python manage.py afterparty confirm" in text
    assert "shown by `python manage.py afterparty run`" in text
