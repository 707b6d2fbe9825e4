"""mark-done, skip, forget and resolve: decisions kept in the history with who and when."""

from __future__ import annotations

import json

from conftest import Project


def test_mark_done_all_baselines_without_running(project: Project) -> None:
    ledger = project.root / "ledger.txt"
    for n in range(1, 4):
        project.write_task(f"2026010100000{n}", f"task_{n}", f"open({str(ledger)!r}, 'a').write('x')")
    result = project.cli("mark-done", "--all")
    assert result.code == 0, result.both
    assert "3 task(s) marked done" in result.out
    assert project.cli("run").out.strip() == "no pending tasks"
    assert not ledger.exists()
    history = json.loads(project.cli("show", "task_1", "--json").out)["attempts"]
    assert [(a["action"], a["state"]) for a in history] == [("mark-done", "succeeded")]
    assert history[0]["username"] and history[0]["started_at"]


def test_mark_done_by_version_and_usage_errors(project: Project) -> None:
    project.write_task("20260101000001", "one")
    project.write_task("20260101000002", "two")
    assert project.cli("mark-done", "20260101000002").code == 0
    states = dict(project.query("SELECT name, state FROM afterparty_tasks"))
    assert states == {"two": "succeeded"}
    assert project.cli("mark-done").code == 2
    assert project.cli("mark-done", "nope").code == 2


def test_skip_records_reason_and_forget_makes_pending_again(project: Project) -> None:
    ledger = project.root / "ledger.txt"
    project.write_task("20260101000001", "optional", f"open({str(ledger)!r}, 'a').write('ran\\n')")
    skipped = project.cli("skip", "optional", "--reason", "customer already told by phone")
    assert skipped.code == 0, skipped.both
    assert project.cli("run").out.strip() == "no pending tasks"
    shown = project.cli("show", "optional")
    assert "customer already told by phone" in shown.out and "skip: skipped" in shown.out

    forgotten = project.cli("forget", "20260101000001")
    assert forgotten.code == 0
    assert "skipped -> pending" in forgotten.out
    assert project.cli("run").code == 0
    assert ledger.read_text() == "ran\n"
    actions = [a["action"] for a in json.loads(project.cli("show", "optional", "--json").out)["attempts"]]
    assert actions == ["skip", "forget", "run"]


def test_skip_needs_a_reason(project: Project) -> None:
    project.write_task("20260101000001", "one")
    assert project.cli("skip", "one").code == 2


def test_resolve_only_settles_interrupted_or_failed(project: Project) -> None:
    project.write_task("20260101000001", "fine")
    project.write_task("20260101000002", "broken", "raise RuntimeError('no')")
    project.cli("run")
    refused = project.cli("resolve", "fine", "--done")
    assert refused.code == 2
    assert "nothing to resolve" in refused.err
    assert project.cli("resolve", "broken").code == 2
    done = project.cli("resolve", "broken", "--done", "--note", "did it by hand")
    assert done.code == 0, done.both
    assert project.cli("run").out.strip() == "no pending tasks"
