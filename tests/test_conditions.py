"""Whether a task runs now: environments, groups, dependencies, conditions, recurring, timeouts, retries."""

from __future__ import annotations

import json

from conftest import Project


def states(project: Project) -> dict[str, str]:
    return {t["name"]: t["state"] for t in json.loads(project.cli("status", "--json").out)["tasks"]}


def reasons(project: Project) -> dict[str, str | None]:
    return {t["name"]: t["reason"] for t in json.loads(project.cli("status", "--json").out)["tasks"]}


def test_environments_limit_where_a_task_runs_and_records(project: Project) -> None:
    marker = project.root / "imported"
    project.write_task("20260101000001", "prod_only", header=f"open({str(marker)!r}, 'a').write('i')\n",
                       options='description="Only in production", environments=["production"]')
    project.write_task("20260101000002", "everywhere")
    result = project.cli("run")
    assert result.code == 0, result.both
    assert "everywhere succeeded" in result.out and "prod_only" not in result.out
    assert [v for (v,) in project.query("SELECT version FROM afterparty_tasks")] == ["20260101000002"]
    assert reasons(project)["prod_only"] == "not for this environment"
    assert "not for this environment" in project.cli("status").out
    again = project.cli("run")
    assert again.out.strip() == "no pending tasks"
    assert not marker.exists()  # its literal environments= was read without importing it

    prod = project.cli("run", extra_env={"AFTERPARTY_ENV": "production"})
    assert prod.code == 0 and "prod_only succeeded" in prod.out


def test_group_runs_only_its_tasks(project: Project) -> None:
    project.write_task("20260101000001", "before", options='group="before_migrate"')
    project.write_task("20260101000002", "after")
    first = project.cli("run", "--group", "before_migrate")
    assert first.code == 0, first.both
    assert states(project) == {"before": "succeeded", "after": "pending"}
    assert project.cli("run", "--group", "before_migrate").out.strip() == "no pending tasks"
    rest = project.cli("run")
    assert "after succeeded" in rest.out and "before" not in rest.out


def test_depends_on_waits_for_the_dependency_even_a_later_version(project: Project) -> None:
    ledger = project.root / "ledger.txt"
    write = f"open({str(ledger)!r}, 'a').write(ctx.name + '\\n')"
    project.write_task("20260101000001", "announce", write,
                       options='depends_on=["enable_feature"]')
    project.write_task("20260101000002", "enable_feature", write)
    result = project.cli("run")
    assert result.code == 0, result.both
    assert ledger.read_text().split() == ["enable_feature", "announce"]


def test_depends_on_a_failed_task_waits_and_says_why(project: Project) -> None:
    project.write_task("20260101000001", "breaks", "raise RuntimeError('no')")
    project.write_task("20260101000002", "needs_it", options='depends_on=["20260101000001"]')
    project.write_task("20260101000003", "independent")
    result = project.cli("run", "--keep-going")
    assert result.code == 1
    assert "needs_it waiting: depends on 20260101000001_breaks (failed)" in result.out
    assert "independent succeeded" in result.out
    assert reasons(project)["needs_it"] == "waiting: depends on 20260101000001_breaks (failed)"


def test_unknown_dependency_or_cycle_is_exit_2_before_anything_runs(project: Project) -> None:
    ledger = project.root / "ledger.txt"
    project.write_task("20260101000001", "first", f"open({str(ledger)!r}, 'a').write('x')")
    project.write_task("20260101000002", "typo", options='depends_on=["no_such_task"]')
    result = project.cli("run")
    assert result.code == 2
    assert "depends_on names no task: 'no_such_task'" in result.err
    assert not ledger.exists()

    project.write_task("20260101000002", "typo", options='depends_on=["loop_b"]')
    project.write_task("20260101000003", "loop_b", options='depends_on=["typo"]')
    cycle = project.cli("run")
    assert cycle.code == 2
    assert "dependency cycle: 20260101000002 -> 20260101000003 -> 20260101000002" in cycle.err
    assert not ledger.exists()


def test_when_condition_keeps_a_task_waiting_without_holding_back_others(project: Project) -> None:
    live = project.root / "partner_is_live"
    project.write_task("20260101000001", "call_partner", "print('called the partner API')",
                       options='when=partner_is_live', header=f'''
        import os

        def partner_is_live(ctx):
            """the partner's v2 API is live"""
            return os.path.exists({str(live)!r})
    ''')
    project.write_task("20260101000002", "later")
    result = project.cli("run")
    assert result.code == 0, result.both
    assert "call_partner waiting: condition partner_is_live is not met yet" in result.out
    assert "later succeeded" in result.out
    assert "1 succeeded, 1 waiting" in result.out
    assert states(project)["call_partner"] == "pending"
    assert reasons(project)["call_partner"].startswith("waiting: condition partner_is_live")
    assert "waiting: condition" in project.cli("status").out

    live.write_text("")
    ran = project.cli("run")
    assert "call_partner succeeded" in ran.out and "called the partner API" in ran.out
    assert reasons(project)["call_partner"] is None


def test_not_before(project: Project) -> None:
    project.write_task("20260101000001", "future", options="not_before=datetime(2999, 1, 1)",
                       header="from datetime import datetime\n")
    project.write_task("20260101000002", "past", options="not_before=datetime(2001, 1, 1)",
                       header="from datetime import datetime\n")
    result = project.cli("run")
    assert result.code == 0, result.both
    assert "future waiting: not before 2999-01-01 00:00:00 UTC" in result.out
    assert states(project) == {"future": "pending", "past": "succeeded"}


def test_recurring_task_runs_on_every_run(project: Project) -> None:
    project.write_task("20260101000001", "warm_cache", options="recurring=True")
    project.write_task("20260101000002", "once")
    for _ in range(3):
        assert project.cli("run").code == 0
    rows = project.query(
        "SELECT version, COUNT(*) FROM afterparty_attempts GROUP BY version ORDER BY version")
    assert rows == [("20260101000001", 3), ("20260101000002", 1)]


def test_timeout_stops_the_task_and_rolls_back(project: Project) -> None:
    project.write_task("20260101000000", "make_table",
                       'ctx.db.cursor().execute("CREATE TABLE effects (note VARCHAR(20))")')
    project.write_task("20260101000001", "hangs", """
        import time
        ctx.db.cursor().execute("INSERT INTO effects (note) VALUES ('partial')")
        time.sleep(60)
    """, options="timeout=1")
    result = project.cli("run")
    assert result.code == 1
    assert "hangs failed" in result.out and "timed out after 1 s" in result.out
    assert project.query("SELECT note FROM effects") == []
    error = project.query("SELECT error FROM afterparty_attempts WHERE version = '20260101000001'")
    assert error == [("timed out after 1 s",)]


def test_retries_with_backoff_record_every_try(project: Project) -> None:
    counter = project.root / "tries"
    project.write_task("20260101000001", "flaky", f"""
        import os
        tries = int(open({str(counter)!r}).read()) if os.path.exists({str(counter)!r}) else 0
        open({str(counter)!r}, "w").write(str(tries + 1))
        if tries < 2:
            raise ConnectionError(f"try {{tries + 1}} failed")
    """, options="retries=3, retry_delay=0.05")
    result = project.cli("run")
    assert result.code == 0, result.both
    assert result.out.count("retrying in") == 2
    history = json.loads(project.cli("show", "flaky", "--json").out)["attempts"]
    assert [a["state"] for a in history] == ["failed", "failed", "succeeded"]

    project.write_task("20260101000002", "never", "raise ValueError('always')",
                       options="retries=1, retry_delay=0")
    failed = project.cli("run")
    assert failed.code == 1
    assert [a["state"] for a in json.loads(project.cli("show", "never", "--json").out)["attempts"]] == [
        "failed", "failed"]


def test_check_finds_dependency_problems_without_a_database(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "a", options='depends_on=["b"]')
    sqlite_project.write_task("20260101000002", "b", options='depends_on=["a"]')
    sqlite_project.write_task("20260101000003", "c", options='depends_on=["nope"]')
    result = sqlite_project.cli("check", extra_env={"AFTERPARTY_DATABASE_URL": "postgresql://x@127.0.0.1:1/x"})
    assert result.code == 2
    assert "depends_on names no task: 'nope'" in result.err
    assert "dependency cycle" in result.err


def test_running_one_task_checks_its_dependency_among_all_task_files(project: Project) -> None:
    project.write_task("20260101000001", "first")
    project.write_task("20260101000002", "second", options='depends_on=["first"]')
    plan = project.cli("run", "--dry-run", "second")
    assert plan.code == 0, plan.both
    assert "would wait 20260101000002: depends on 20260101000001_first (pending)" in plan.out
    waits = project.cli("run", "second")
    assert waits.code == 0, waits.both
    assert "second waiting: depends on 20260101000001_first (pending)" in waits.out
