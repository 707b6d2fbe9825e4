"""`afterparty verify`: the deploy gate a pipeline or a readiness probe asks "is it settled?"."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from conftest import Project, stop, wait_until

GATE = 6


def test_verify_passes_only_once_every_task_ran(project: Project) -> None:
    """Before the run the gate names the pending task; after it, exit 0."""
    project.write_task("20260101000001", "tell_support", "print('told')")
    project.write_task("20260101000002", "not_here", options='environments=["production"]')
    before = project.cli("verify")
    assert before.code == GATE, before.both
    assert "20260101000001 tell_support: pending" in before.out
    assert "not_here" not in before.out  # not meant for this environment: nothing to wait for
    assert "1 task(s) need attention in development (exit 6)" in before.out
    assert project.cli("verify", "--allow-pending").code == 0
    assert project.cli("run").code == 0
    after = project.cli("verify")
    assert after.code == 0, after.both
    assert "development is settled" in after.out


def test_a_failed_task_fails_the_gate_with_its_error_in_json(sqlite_project: Project) -> None:
    """--json has schema 1, the problem, its last error line and the next step."""
    sqlite_project.write_task("20260101000001", "breaks", "raise RuntimeError('partner API is down')")
    assert sqlite_project.cli("run").code == 1
    result = sqlite_project.cli("verify", "--json", "--allow-pending", "--allow-awaiting")
    assert result.code == GATE
    report = json.loads(result.out)
    assert report["schema"] == 1 and report["ok"] is False and report["exit_code"] == GATE
    (problem,) = report["problems"]
    assert problem["version"] == "20260101000001" and problem["problem"] == "failed"
    assert "partner API is down" in problem["detail"]
    assert "afterparty show 20260101000001" in problem["next_step"]


def test_a_human_step_fails_the_gate_unless_allowed(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "restart_search", '"""Restart it."""',
                              options="manual=True")
    assert sqlite_project.cli("run", "--no-input").code == 0
    waiting = sqlite_project.cli("verify")
    assert waiting.code == GATE
    assert "restart_search: awaiting" in waiting.out
    assert "afterparty confirm 20260101000001" in waiting.out
    allowed = sqlite_project.cli("verify", "--allow-awaiting")
    assert allowed.code == 0, allowed.both
    assert "restart_search: awaiting, allowed" in allowed.out
    assert sqlite_project.cli("confirm", "20260101000001").code == 0
    assert sqlite_project.cli("verify").code == 0


def test_a_task_file_changed_after_it_ran_fails_the_gate(sqlite_project: Project) -> None:
    path = sqlite_project.write_task("20260101000001", "tell_support", "print('told')")
    assert sqlite_project.cli("run").code == 0
    path.write_text(path.read_text().replace("told", "told again"))
    result = sqlite_project.cli("verify")
    assert result.code == GATE
    assert "tell_support: modified" in result.out


def test_a_held_task_fails_the_gate(project: Project, tmp_path: Path) -> None:
    """A runner killed mid-task; the next run holds the task (exit 5); verify says so."""
    started = tmp_path / "started"
    project.write_task("20260101000001", "charge_once", f"""
        import time
        open({str(started)!r}, "w").close()
        while True:
            time.sleep(0.05)
    """, options='on_interrupt="hold"')
    runner = project.popen("run")
    try:
        wait_until(started.exists, "the task started")
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=30)
    finally:
        stop(runner)
    assert project.cli("verify").code == GATE  # still recorded running: not settled
    held = project.cli("run")
    assert held.code == 5, held.both
    result = project.cli("verify", "--allow-pending", "--allow-awaiting")
    assert result.code == GATE
    assert "charge_once: interrupted" in result.out
    assert "afterparty resolve 20260101000001" in result.out
