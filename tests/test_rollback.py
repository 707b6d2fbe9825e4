"""rollback: run a task's undo step, mark it reverted, and run it again on the next run."""

from __future__ import annotations

import json

from conftest import Project

UNDOABLE = '''
from afterparty import task

LEDGER = {ledger!r}


@task(description="Turn the feature on")
def run(ctx):
    open(LEDGER, "a").write("on\\n")


@run.undo
def turn_off(ctx):
    ctx.log.info("turning it off")
    open(LEDGER, "a").write("off\\n")
    {extra}
'''


def test_rollback_runs_the_undo_step_and_makes_the_task_pending(project: Project) -> None:
    ledger = project.root / "ledger.txt"
    (project.tasks_dir / "20260101000001_feature.py").write_text(
        UNDOABLE.format(ledger=str(ledger), extra=""))
    assert project.cli("run").code == 0
    rolled = project.cli("rollback", "feature", extra_env={"AFTERPARTY_RELEASE": "v2-rollback"})
    assert rolled.code == 0, rolled.both
    assert "feature reverted" in rolled.out
    assert ledger.read_text() == "on\noff\n"
    status = json.loads(project.cli("status", "--json").out)["tasks"][0]
    assert status["state"] == "reverted"
    history = json.loads(project.cli("show", "feature", "--json").out)["attempts"]
    assert [(a["action"], a["state"]) for a in history] == [("run", "succeeded"), ("rollback", "succeeded")]
    assert "turning it off" in history[1]["output"] and history[1]["release_id"] == "v2-rollback"
    assert project.cli("run").code == 0
    assert ledger.read_text() == "on\noff\non\n"


def test_failed_undo_leaves_the_task_as_it_was(project: Project) -> None:
    ledger = project.root / "ledger.txt"
    (project.tasks_dir / "20260101000001_feature.py").write_text(
        UNDOABLE.format(ledger=str(ledger), extra="raise RuntimeError('cannot turn off')"))
    project.cli("run")
    rolled = project.cli("rollback", "20260101000001")
    assert rolled.code == 1
    assert "cannot turn off" in rolled.out
    assert json.loads(project.cli("status", "--json").out)["tasks"][0]["state"] == "succeeded"


def test_rollback_without_undo_needs_record_only(project: Project) -> None:
    project.write_task("20260101000001", "plain")
    project.write_task("20260101000002", "never_ran")
    project.cli("run", "plain")
    refused = project.cli("rollback", "plain")
    assert refused.code == 2
    assert "no undo step" in refused.err and "--record-only" in refused.err
    assert project.cli("rollback", "never_ran").code == 2
    recorded = project.cli("rollback", "plain", "--record-only")
    assert recorded.code == 0, recorded.both
    assert json.loads(project.cli("show", "plain", "--json").out)["task"]["state"] == "reverted"
    assert "plain succeeded" in project.cli("run").out
