"""Holes the one state machine closes, each as a user would meet it: a must-never-repeat task
whose commit failed, a task that forks, and reasons that are computed from the records now."""

from __future__ import annotations

import json
import signal
import textwrap

import pytest

from conftest import MYSQL_ADMIN, Project, stop, wait_until
from test_task_escapes import SESSION_ENDS, appends, backend, states


@pytest.mark.parametrize("database_url", ["postgresql", "mysql"], indirect=True)
def test_a_must_never_repeat_task_whose_commit_failed_is_held(project: Project) -> None:
    """The body finished (its outside effect happened), then the session ended before its
    success could be committed: the outcome is unknown, so an ``on_interrupt="hold"`` task waits
    for a person (exit 5) on this run and the next, and its effect happened once."""
    ledger = project.root / "ledger"
    ends = textwrap.dedent(SESSION_ENDS[backend(project)]).format(url=project.database_url,
                                                                  **MYSQL_ADMIN)
    project.write_task("20260101000001", "charge_card", appends(ledger, "charged") + "\n" + ends,
                       options='description="charge the card", on_interrupt="hold"')
    project.write_task("20260101000002", "later", "pass")

    first = project.cli("run")
    assert first.code == 5, first.both
    assert "resolve 20260101000001" in first.both, first.both
    assert states(project) == {"charge_card": "interrupted"}
    again = project.cli("run")
    assert again.code == 5, again.both
    assert ledger.read_text().split() == ["charged"]
    assert states(project) == {"charge_card": "interrupted"}


FORKS = """
    import os, sys
    child = os.fork()
    if child == 0:
        {child}
    os.waitpid(child, 0)
"""


@pytest.mark.parametrize("child", ["sys.exit(0)", "raise RuntimeError('in the child')", "pass"])
def test_a_forked_child_never_acts_as_the_runner(project: Project, child: str) -> None:
    """A task forks a child that exits, raises or simply returns: the child ends there, and
    only the runner goes on to the later tasks, whose work is committed once."""
    ledger = project.root / "ledger"
    project.query("CREATE TABLE shipped (note VARCHAR(20))")
    project.write_task("20260101000001", "forks", FORKS.format(child=child))
    for number in (2, 3):
        project.write_task(f"2026010100000{number}", f"later_{number}", f"""
            ctx.db.cursor().execute("INSERT INTO shipped VALUES ('task {number}')")
            {appends(ledger, f"task {number}")}
        """)

    result = project.cli("run", "--keep-going")

    assert result.code == 0, result.both
    assert sorted(project.query("SELECT note FROM shipped")) == [("task 2",), ("task 3",)]
    assert ledger.read_text().splitlines() == ["task 2", "task 3"]
    assert states(project) == {"forks": "succeeded", "later_2": "succeeded", "later_3": "succeeded"}
    assert project.cli("status").code == 0


def test_reasons_are_computed_from_the_records_now(project: Project) -> None:
    """After a human step is confirmed, nothing says its dependent waits on it `(awaiting)`:
    status, verify and show read the dependency's state now; a dependency that failed since is
    named as failed."""
    project.write_task("20260101000001", "restart_search", "return 'restart it'",
                       options='description="restart", manual=True')
    project.write_task("20260101000002", "reindex", "pass", options='depends_on=["restart_search"]')
    project.write_task("20260101000003", "needs_broken", "pass", options='depends_on=["broken"]')
    project.write_task("20260101000000", "broken", "raise RuntimeError('no')")
    assert project.cli("run", "--keep-going").code == 1

    def reason(name: str) -> str | None:
        rows = json.loads(project.cli("status", "--json").out)["tasks"]
        return {row["name"]: row for row in rows}[name]["reason"]

    assert reason("reindex") == "waiting: depends on 20260101000001_restart_search (awaiting)"
    assert reason("needs_broken") == "waiting: depends on 20260101000000_broken (failed)"
    assert project.cli("confirm", "20260101000001").code == 0
    assert project.cli("resolve", "broken", "--skip").code == 0

    assert reason("reindex") is None
    assert reason("needs_broken") == "waiting: depends on 20260101000000_broken (skipped)"
    verify = project.cli("verify", "--allow-pending")
    assert "(awaiting)" not in verify.both, verify.both
    assert "awaiting" not in project.cli("show", "reindex").out


def test_a_task_for_other_environments_named_by_a_variable_holds_no_deploy(project: Project) -> None:
    """``environments=ONLY``: only an import tells where it runs. ``run`` never runs it in
    staging, and status and verify agree (not pending there); in production it runs."""
    project.write_task("20260101000001", "production_only", "print('ran')",
                       options="environments=ONLY", header='ONLY = ["production"]')
    staging = {"AFTERPARTY_ENV": "staging"}
    ran = project.cli("run", extra_env=staging)
    assert ran.code == 0 and "ran" not in ran.out, ran.both
    rows = json.loads(project.cli("status", "--json", extra_env=staging).out)["tasks"]
    assert [(row["state"], row["reason"]) for row in rows] == [("pending", "not for this environment")]
    verified = project.cli("verify", extra_env=staging)
    assert verified.code == 0, verified.both

    production = {"AFTERPARTY_ENV": "production"}
    assert project.cli("verify", extra_env=production).code == 6
    assert project.cli("run", extra_env=production).code == 0
    assert project.cli("verify", extra_env=production).code == 0


def test_status_says_a_killed_runner_is_gone(project: Project) -> None:
    """A run SIGKILLed mid-task leaves the task recorded running: status and verify say that
    its runner is gone instead of showing its last progress as if it went on."""
    started = project.root / "started"
    project.write_task("20260101000001", "backfill", f"""
        import os, time
        ctx.progress(1, total=10)
        open({str(started)!r}, "w").close()
        if not os.path.exists({str(project.root / "second")!r}):
            while True:
                time.sleep(0.05)
    """, options='description="backfill", atomic=False')
    runner = project.popen("run")
    try:
        wait_until(started.exists, "the task running")
        status = project.cli("status")
        assert "its runner is gone" not in status.out, status.out
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
    finally:
        stop(runner)

    status = project.cli("status")
    assert "its runner is gone" in status.out and "left" not in status.out, status.out
    verify = project.cli("verify")
    assert verify.code == 6 and "its runner is gone" in verify.both, verify.both
    (project.root / "second").touch()
    again = project.cli("run")
    assert again.code == 0 and "interrupted" in again.out, again.both
