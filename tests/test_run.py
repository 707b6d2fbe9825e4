"""run: pending tasks in version order, exactly once, failures, ctx.db, selection, dry run."""

from __future__ import annotations

import json

from conftest import Project


def test_runs_pending_tasks_in_version_order_not_name_order(project: Project) -> None:
    ledger = project.root / "ledger.txt"
    body = f"open({str(ledger)!r}, 'a').write(ctx.name + '\\n')"
    # Alphabetical order of the names is the reverse of the version order.
    project.write_task("20260101000003", "alpha", body)
    project.write_task("20260101000002", "bravo", body)
    project.write_task("20260101000001", "charlie", body)
    project.write_task("99999999999999", "delta", body)  # 14 digits, not a real date: accepted

    result = project.cli("run")
    assert result.code == 0, result.both
    assert ledger.read_text().split() == ["charlie", "bravo", "alpha", "delta"]
    lines = [line for line in result.out.splitlines() if "succeeded in" in line and line[0].isdigit()]
    assert [line.split()[1] for line in lines] == ["charlie", "bravo", "alpha", "delta"]
    assert "4 succeeded" in result.out

    again = project.cli("run")
    assert again.code == 0
    assert "no pending tasks" in again.out
    assert ledger.read_text().split() == ["charlie", "bravo", "alpha", "delta"]
    rows = project.query("SELECT version, state FROM afterparty_tasks ORDER BY version")
    assert rows == [("20260101000001", "succeeded"), ("20260101000002", "succeeded"),
                    ("20260101000003", "succeeded"), ("99999999999999", "succeeded")]


def test_a_new_task_runs_on_the_next_deploy(project: Project) -> None:
    project.write_task("20260101000001", "first")
    assert project.cli("run").code == 0
    project.write_task("20260101000002", "second")
    result = project.cli("run")
    assert result.code == 0
    assert "second succeeded" in result.out
    assert "first" not in result.out


def test_failure_stops_the_run_and_is_retried(project: Project) -> None:
    flag = project.root / "fixed"
    project.write_task("20260101000001", "ok_before")
    project.write_task("20260101000002", "breaks", f"""
        import os
        if not os.path.exists({str(flag)!r}):
            raise RuntimeError("the API said no")
    """)
    project.write_task("20260101000003", "after")

    result = project.cli("run")
    assert result.code == 1
    assert "breaks failed" in result.out
    assert "RuntimeError: the API said no" in result.out
    assert "after" not in result.out
    states = dict(project.query("SELECT version, state FROM afterparty_tasks"))
    assert states == {"20260101000001": "succeeded", "20260101000002": "failed"}
    error = project.query("SELECT error FROM afterparty_attempts WHERE version = '20260101000002'")
    assert "Traceback" in str(error[0][0]) and "the API said no" in str(error[0][0])

    flag.write_text("")
    retry = project.cli("run")
    assert retry.code == 0, retry.both
    assert "breaks succeeded" in retry.out and "after succeeded" in retry.out
    attempts = project.query(
        "SELECT state FROM afterparty_attempts WHERE version = '20260101000002' ORDER BY id")
    assert attempts == [("failed",), ("succeeded",)]


def test_keep_going_runs_later_tasks_and_still_exits_1(project: Project) -> None:
    project.write_task("20260101000001", "breaks", "raise ValueError('boom')")
    project.write_task("20260101000002", "after")
    result = project.cli("run", "--keep-going")
    assert result.code == 1
    assert "after succeeded" in result.out
    assert "1 succeeded, 1 failed" in result.out


def test_ctx_db_work_commits_with_the_success_record(project: Project) -> None:
    project.write_task("20260101000001", "make_table", """
        cur = ctx.db.cursor()
        cur.execute("CREATE TABLE shipped (note VARCHAR(50))")
    """)
    project.write_task("20260101000002", "insert_ok", """
        cur = ctx.db.cursor()
        cur.execute("INSERT INTO shipped (note) VALUES ('kept')")
    """)
    project.write_task("20260101000003", "insert_then_fail", """
        cur = ctx.db.cursor()
        cur.execute("INSERT INTO shipped (note) VALUES ('rolled back')")
        raise RuntimeError("after the insert")
    """)
    result = project.cli("run")
    assert result.code == 1
    assert project.query("SELECT note FROM shipped") == [("kept",)]
    states = dict(project.query("SELECT version, state FROM afterparty_tasks"))
    assert states["20260101000003"] == "failed"


def test_task_may_not_commit_the_runner_transaction(project: Project) -> None:
    project.write_task("20260101000001", "commits", "ctx.db.commit()")
    result = project.cli("run")
    assert result.code == 1
    assert "ctx.db.commit() is not allowed" in result.out


def test_tasks_import_the_application_modules(project: Project) -> None:
    (project.root / "myapp").mkdir()
    (project.root / "myapp" / "__init__.py").write_text("GREETING = 'hello from the app'\n")
    project.write_task("20260101000001", "uses_app", "from myapp import GREETING\nprint(GREETING)")
    result = project.cli("run")
    assert result.code == 0, result.both
    assert "hello from the app" in result.out


def test_run_selected_versions_only(project: Project) -> None:
    project.write_task("20260101000001", "one")
    project.write_task("20260101000002", "two")
    project.write_task("20260101000003", "three")
    result = project.cli("run", "20260101000003", "one")
    assert result.code == 0, result.both
    states = dict(project.query("SELECT name, state FROM afterparty_tasks"))
    assert states == {"one": "succeeded", "three": "succeeded"}
    unknown = project.cli("run", "20990101000000")
    assert unknown.code == 2
    assert "no task file" in unknown.err


def test_dry_run_prints_the_plan_and_changes_nothing(project: Project) -> None:
    ledger = project.root / "ledger.txt"
    project.write_task("20260101000002", "second", f"open({str(ledger)!r}, 'a').write('x')")
    project.write_task("20260101000001", "first", f"open({str(ledger)!r}, 'a').write('x')")
    result = project.cli("run", "--dry-run")
    assert result.code == 0, result.both
    assert result.out.index("first") < result.out.index("second")
    assert "2 pending task(s) would run" in result.out
    assert not ledger.exists()
    status = json.loads(project.cli("status", "--json").out)
    assert [t["state"] for t in status["tasks"]] == ["pending", "pending"]


def test_run_json_shape(project: Project) -> None:
    project.write_task("20260101000001", "one")
    project.write_task("20260101000002", "two", "raise KeyError('x')")
    result = project.cli("run", "--json")
    assert result.code == 1
    data = json.loads(result.out)
    assert data["result"] == "ran"
    assert data["exit_code"] == 1
    assert [(t["name"], t["state"]) for t in data["tasks"]] == [("one", "succeeded"), ("two", "failed")]
    assert "KeyError" in data["tasks"][1]["error"]
    assert json.loads(project.cli("run", "--json", "one").out)["result"] == "nothing_to_do"


def test_output_is_captured_and_shown(project: Project) -> None:
    project.write_task("20260101000001", "talks", """
        import sys
        ctx.log.info("via the logger")
        print("via print")
        print("via stderr", file=sys.stderr)
        ctx.notify("customer X: issue 111 is fixed")
    """)
    result = project.cli("run")
    assert result.code == 0, result.both
    assert "via the logger" in result.out and "via print" in result.out
    shown = project.cli("show", "20260101000001")
    for text in ("via the logger", "via print", "via stderr", "issue 111 is fixed"):
        assert text in shown.out


def test_captured_output_is_capped_at_64_kib(project: Project) -> None:
    project.write_task("20260101000001", "chatty", "print('x' * 200_000)")
    assert project.cli("run").code == 0
    stored = project.query("SELECT output FROM afterparty_attempts")[0][0]
    assert isinstance(stored, str)
    assert stored.count("x") == 64 * 1024
    assert "truncated" in stored


def test_context_carries_env_release_attempt_and_key(project: Project) -> None:
    project.write_task("20260101000001", "ctx_facts", """
        print("facts", ctx.env, ctx.release, ctx.attempt, ctx.idempotency_key)
        if ctx.attempt == 1:
            raise RuntimeError("first try fails")
    """)
    env = {"AFTERPARTY_ENV": "staging", "AFTERPARTY_RELEASE": "v1.2.3"}
    first = project.cli("run", extra_env=env)
    second = project.cli("run", extra_env=env)
    facts = [line.split()[1:] for line in (first.out + second.out).splitlines()
             if line.startswith("facts")]
    assert facts[0][:3] == ["staging", "v1.2.3", "1"]
    assert facts[1][:3] == ["staging", "v1.2.3", "2"]
    assert facts[0][3] == facts[1][3] and len(facts[0][3]) == 32
    shown = project.cli("show", "ctx_facts")
    assert "release v1.2.3" in shown.out and "environment staging" in shown.out


def test_sqlite_records_use_the_write_ahead_log(sqlite_project: Project) -> None:
    """WAL with synchronous=FULL: each commit is durable with one fsync (see README, Storage)."""
    for n in range(3):
        sqlite_project.write_task(f"2026010100000{n}", f"task_{n}", body="ctx.log.debug('deep')")
    result = sqlite_project.cli("run")
    assert result.code == 0 and result.out.count("DEBUG deep") == 3, result.both
    assert sqlite_project.query("PRAGMA journal_mode") == [("wal",)]
