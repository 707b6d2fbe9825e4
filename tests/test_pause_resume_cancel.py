"""pause, resume and cancel: a person stops a long task at its next batch (cooperatively, while
the deploy that runs it holds the lock), later lets it go on from its checkpoint, or stops it for
good; who asked, when and why is kept in its history."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Project, stop, wait_until

VERSION = "20260101000001"


def backfill(project: Project, limit: Path) -> None:
    """A backfill of one row a batch, up to the number in ``limit`` (read each batch)."""
    project.query("CREATE TABLE filled (n INTEGER)")
    project.write_task(VERSION, "backfill", f"""
        cursor = ctx.checkpoint.get(0)
        while cursor < int(open({str(limit)!r}).read()):
            with ctx.batch(checkpoint=cursor + 1):
                ctx.db.cursor().execute("INSERT INTO filled VALUES (%s)" % (cursor + 1))
            cursor += 1
            ctx.progress(cursor)
    """, options='description="backfill", atomic=False')


def filled(project: Project) -> list[int]:
    return sorted(int(n) for (n,) in project.query("SELECT n FROM filled"))


def checkpoint(project: Project) -> int:
    """The backfill's committed checkpoint (0 before the records exist)."""
    try:
        rows = project.query(
            f"SELECT checkpoint FROM afterparty_checkpoints WHERE version = '{VERSION}'")
    except Exception:  # the first run has not created the records tables yet
        return 0
    return int(json.loads(rows[0][0])) if rows else 0


def test_a_paused_backfill_keeps_its_work_and_resumes_from_its_checkpoint(project: Project) -> None:
    limit = project.root / "limit"
    limit.write_text(str(10**9))
    backfill(project, limit)
    deploy = project.popen("run")
    try:
        wait_until(lambda: checkpoint(project) >= 3, "a few batches committed")
        asked = project.cli("pause", VERSION, "--note", "the replica lags")
        assert asked.code == 0, asked.both
        assert "asked to stop at its next batch" in asked.out
        out, err = deploy.communicate(timeout=60)
    finally:
        stop(deploy)
    assert deploy.returncode == 0, out + err
    assert "backfill paused" in out, out

    done = checkpoint(project)
    assert filled(project) == list(range(1, done + 1))  # every committed batch, once
    status = json.loads(project.cli("status", "--json").out)["tasks"][0]
    assert status["state"] == "paused" and "afterparty resume" in status["reason"]
    assert project.cli("run").out.strip() == "no pending tasks"
    verify = project.cli("verify")
    assert verify.code == 6 and "paused" in verify.both
    history = json.loads(project.cli("show", VERSION, "--json").out)["attempts"]
    pause = next(a for a in history if a["action"] == "pause")
    assert pause["note"] == "the replica lags" and pause["username"]

    assert project.cli("resume", VERSION, "--note", "lag is gone").code == 0
    limit.write_text(str(done + 3))
    again = project.cli("run")
    assert again.code == 0, again.both
    assert filled(project) == list(range(1, done + 4))
    actions = [(a["action"], a["state"]) for a in
               json.loads(project.cli("show", VERSION, "--json").out)["attempts"]]
    assert actions == [("run", "paused"), ("pause", "running"), ("resume", "pending"),
                       ("run", "succeeded")], actions


def test_a_cancelled_task_is_not_run_again_until_someone_decides(project: Project) -> None:
    limit = project.root / "limit"
    limit.write_text(str(10**9))
    backfill(project, limit)
    deploy = project.popen("run")
    try:
        wait_until(lambda: checkpoint(project) >= 2, "two batches committed")
        assert project.cli("cancel", VERSION, "--note", "wrong table").code == 0
        out, err = deploy.communicate(timeout=60)
    finally:
        stop(deploy)
    assert deploy.returncode == 0 and "backfill cancelled" in out, out + err
    assert project.cli("run").out.strip() == "no pending tasks"
    refused = project.cli("resume", VERSION)
    assert refused.code == 2 and "cancelled" in refused.err, refused.both

    assert project.cli("resolve", VERSION, "--skip", "--note", "done by hand").code == 0
    assert json.loads(project.cli("status", "--json").out)["tasks"][0]["state"] == "skipped"


def test_pause_applies_only_to_a_running_task(project: Project) -> None:
    project.write_task(VERSION, "quick", "pass")
    refused = project.cli("pause", VERSION)
    assert refused.code == 2 and "is pending, not running" in refused.err, refused.both
    assert project.cli("run").code == 0
    assert project.cli("pause", VERSION).code == 2
