"""Long tasks: atomic=False, ctx.batch with checkpoints, ctx.progress and throttle, on every
backend, as a task author writes them (the manual's "A long backfill in batches" example)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from afterparty.records import SCHEMA_VERSION
from conftest import Project, stop, wait_until

VERSION = "20260101000000"

# The manual's example, with the number of batches and a hook for the tests (a file that makes
# the first attempt fail after a given batch).
BACKFILL = """
    import os
    ctx.db.execute("CREATE TABLE IF NOT EXISTS backfilled (batch INTEGER, n INTEGER)")
    start = ctx.checkpoint.get(0)
    for i in range(start, {batches}):
        with ctx.batch(checkpoint=i + 1):
            ctx.db.executemany("INSERT INTO backfilled (batch, n) VALUES (%s, %s)",
                               [(i, n) for n in range(10)])
        ctx.progress(i + 1, total={batches})
        if os.path.exists("fail_after_%d" % i):
            os.remove("fail_after_%d" % i)
            raise RuntimeError("the network went away after batch %d" % i)
"""


def write_backfill(project: Project, batches: int = 10, options: str = "") -> None:
    project.write_task(VERSION, "backfill", BACKFILL.format(batches=batches),
                       options=f'description="Backfill order totals", atomic=False{options}')


def status_of(project: Project) -> dict[str, object]:
    result = project.cli("status", "--json")
    assert result.code == 0, result.both
    (row,) = [t for t in json.loads(result.out)["tasks"] if t["version"] == VERSION]
    return dict(row)


def batches_written(project: Project) -> list[tuple[object, ...]]:
    return [tuple(int(v) for v in row) for row in  # type: ignore[call-overload]
            project.query("SELECT batch, COUNT(*) FROM backfilled GROUP BY batch ORDER BY batch")]


def test_a_backfill_runs_in_batches_and_reports_its_progress(project: Project) -> None:
    write_backfill(project)

    result = project.cli("run")

    assert result.code == 0, result.both
    assert batches_written(project) == [(i, 10) for i in range(10)]
    row = status_of(project)
    assert row["state"] == "succeeded"
    assert row["checkpoint"] == 10
    progress = row["progress"]
    assert isinstance(progress, dict)
    assert (progress["done"], progress["total"], progress["percent"]) == (10, 10, 100)
    shown = project.cli("show", VERSION)
    assert "progress: reached 100% (10/10)" in shown.out
    assert "checkpoint: 10" in shown.out


def test_the_manuals_long_task_example_runs_as_pasted(project: Project) -> None:
    """docs/how-to/backfill.md's task, on every backend."""
    from test_portable_sql import manual_python_blocks

    (block,) = [block for block in manual_python_blocks("ctx.batch(checkpoint=i + 1)")
                if "background=True" not in block]  # the same backfill on Celery: docs/how-to/celery.md
    (project.tasks_dir / "20260101000000_backfill_totals.py").write_text(block)

    result = project.cli("run")

    assert result.code == 0, result.both
    assert project.query("SELECT COUNT(*), COUNT(DISTINCT batch) FROM order_totals") == [(100_000, 100)]
    shown = project.cli("show", "20260101000000")
    assert "progress: reached 100% (100/100)" in shown.out
    assert "checkpoint: 100" in shown.out


def test_an_interrupted_backfill_resumes_after_its_last_committed_batch(project: Project) -> None:
    write_backfill(project)
    (project.root / "fail_after_3").touch()

    first = project.cli("run")

    assert first.code == 1, first.both
    assert "the network went away after batch 3" in first.both
    # The batches before the failure are committed, with the checkpoint; nothing after it.
    assert batches_written(project) == [(i, 10) for i in range(4)]
    assert status_of(project)["checkpoint"] == 4

    second = project.cli("run")

    assert second.code == 0, second.both
    assert batches_written(project) == [(i, 10) for i in range(10)]  # each batch exactly once
    assert status_of(project)["checkpoint"] == 10


def test_forget_clears_the_checkpoint_so_the_task_starts_from_nothing(project: Project) -> None:
    write_backfill(project, batches=3)
    assert project.cli("run").code == 0

    forgotten = project.cli("forget", VERSION)

    assert forgotten.code == 0, forgotten.both
    row = status_of(project)
    assert (row["state"], row["checkpoint"], row["progress"]) == ("pending", None, None)
    assert project.cli("run").code == 0
    assert batches_written(project) == [(i, 20) for i in range(3)]  # ran again from batch 0


def test_progress_is_visible_to_others_while_the_task_runs(project: Project, tmp_path: Path) -> None:
    """An atomic task too: progress is written on a session of its own, outside the task's
    transaction (on SQLite, whose one writer the task's transaction may hold, a report waits
    for the next chance; this task has not written yet)."""
    go_on = tmp_path / "go_on"
    project.write_task(VERSION, "slow", f"""
        import os, time
        ctx.progress(30, total=120, note="counting")
        while not os.path.exists({str(go_on)!r}):
            time.sleep(0.02)
        ctx.progress(120, total=120)
    """)
    runner = project.popen("run")
    try:
        def reported() -> bool:
            progress = status_of(project)["progress"]
            return isinstance(progress, dict) and progress["done"] == 30

        wait_until(reported, "the first progress report in status")
        row = status_of(project)
        assert row["state"] == "running"
        assert row["progress"]["percent"] == 25  # type: ignore[index]
        assert "25% (30/120)" in project.cli("status").out
        go_on.touch()
        assert runner.wait(timeout=60) == 0
    finally:
        stop(runner)
    assert status_of(project)["progress"]["done"] == 120  # type: ignore[index]


def test_a_batch_in_an_atomic_task_is_refused_with_what_to_do(sqlite_project: Project) -> None:
    sqlite_project.write_task(VERSION, "atomic", """
        with ctx.batch(checkpoint=1):
            pass
    """)

    result = sqlite_project.cli("run")

    assert result.code == 1
    assert "ctx.batch() needs @task(atomic=False)" in result.both


@pytest.mark.parametrize(("call", "said"), [
    ('ctx.progress("half")', "ctx.progress(done=...) takes a number, not 'half'"),
    ("ctx.progress(True)", "ctx.progress(done=...) takes a number, not True"),
    ("ctx.progress(3, total=None)", None),
    ("ctx.progress(3.5, total=False)", "ctx.progress(total=...) takes a number, not False"),
])
def test_progress_that_is_not_a_number_fails_the_task_saying_so(sqlite_project: Project, call: str,
                                                               said: str | None) -> None:
    sqlite_project.write_task(VERSION, "report", f"""
        {call}
    """, options="atomic=False")

    result = sqlite_project.cli("run")

    assert result.code == (0 if said is None else 1)
    if said is not None:
        assert said in result.both


def test_sigterm_in_a_batch_rolls_that_batch_back_and_the_next_run_resumes(project: Project,
                                                                          tmp_path: Path) -> None:
    in_batch = tmp_path / "in_batch"
    project.write_task(VERSION, "backfill", f"""
        import os, time
        ctx.db.execute("CREATE TABLE IF NOT EXISTS backfilled (batch INTEGER, n INTEGER)")
        for i in range(ctx.checkpoint.get(0), 3):
            with ctx.batch(checkpoint=i + 1):
                ctx.db.execute("INSERT INTO backfilled (batch, n) VALUES (%s, 0)", (i,))
                if i == 1 and not os.path.exists({str(in_batch)!r}):
                    open({str(in_batch)!r}, "w").close()
                    time.sleep(600)
    """, options="atomic=False")
    runner = project.popen("run")
    try:
        wait_until(in_batch.exists, "the task inside its second batch")
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=60) == 143
    finally:
        stop(runner)
    assert batches_written(project) == [(0, 1)]  # batch 1 was rolled back
    assert status_of(project)["state"] == "interrupted"

    assert project.cli("run").code == 0
    assert batches_written(project) == [(0, 1), (1, 1), (2, 1)]


def test_throttle_holds_the_next_batch_while_the_database_is_under_pressure(
        sqlite_project: Project, tmp_path: Path) -> None:
    pressure, waited = tmp_path / "replica_lag", tmp_path / "waited"
    pressure.touch()
    sqlite_project.write_task(VERSION, "throttled", """
        ctx.db.execute("CREATE TABLE IF NOT EXISTS backfilled (batch INTEGER, n INTEGER)")
        for i in range(3):
            with ctx.batch(checkpoint=i + 1):
                ctx.db.execute("INSERT INTO backfilled (batch, n) VALUES (%s, 0)", (i,))
    """, options="atomic=False, throttle=lag", header=f"""
        import os

        def lag(ctx):
            if os.path.exists({str(pressure)!r}):
                open({str(waited)!r}, "w").close()
                return 0.05
            return 0
    """)
    runner = sqlite_project.popen("run")
    try:
        wait_until(waited.exists, "the throttle holding the first batch")
        assert runner.poll() is None
        assert sqlite_project.query("SELECT COUNT(*) FROM sqlite_master WHERE name = 'backfilled'") \
            == [(1,)]
        assert sqlite_project.query("SELECT COUNT(*) FROM backfilled") == [(0,)]
        pressure.unlink()
        assert runner.wait(timeout=60) == 0
    finally:
        stop(runner)
    assert batches_written(sqlite_project) == [(0, 1), (1, 1), (2, 1)]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_create_index_concurrently_runs_in_a_task_with_atomic_false(project: Project) -> None:
    project.query("CREATE TABLE orders (id INTEGER, total INTEGER)")
    project.write_task("20260101000001", "index_in_a_transaction", """
        ctx.db.execute("CREATE INDEX CONCURRENTLY orders_total_a ON orders (total)")
    """)
    project.write_task("20260101000002", "index_concurrently", """
        ctx.db.execute("CREATE INDEX CONCURRENTLY orders_total ON orders (total)")
    """, options="atomic=False")

    first = project.cli("run", "20260101000001")
    second = project.cli("run", "20260101000002")

    assert first.code == 1
    assert "cannot run inside a transaction block" in first.both
    assert second.code == 0, second.both
    assert project.query("SELECT indexname FROM pg_indexes WHERE tablename = 'orders'") \
        == [("orders_total",)]


def test_records_of_an_older_afterparty_get_the_long_task_tables_on_the_next_run(
        project: Project) -> None:
    """Records made before long tasks (schema 1: no checkpoints or progress tables) are kept
    and completed under the lock by the first run of this version."""
    project.write_task("20250101000000", "old", "pass")
    assert project.cli("run").code == 0
    project.query("DROP TABLE afterparty_checkpoints")
    project.query("DROP TABLE afterparty_progress")
    project.query("UPDATE afterparty_meta SET meta_value = '1' WHERE meta_key = 'schema'")
    assert project.cli("status").code == 0  # a look needs no new table
    write_backfill(project, batches=2)

    result = project.cli("run")

    assert result.code == 0, result.both
    assert batches_written(project) == [(0, 10), (1, 10)]
    assert project.query("SELECT meta_value FROM afterparty_meta WHERE meta_key = 'schema'") == [
        (str(SCHEMA_VERSION),)]
    assert [row["state"] for row in json.loads(project.cli("status", "--json").out)["tasks"]] \
        == ["succeeded", "succeeded"]


def test_an_atomic_task_that_fails_keeps_neither_its_work_nor_its_checkpoint(project: Project) -> None:
    project.write_task(VERSION, "atomic", """
        ctx.db.execute("CREATE TABLE IF NOT EXISTS backfilled (batch INTEGER, n INTEGER)")
        ctx.db.execute("INSERT INTO backfilled (batch, n) VALUES (%s, 0)", (ctx.checkpoint.get(0),))
        ctx.checkpoint.save(ctx.checkpoint.get(0) + 1)
        if ctx.attempt == 1:
            raise RuntimeError("after the checkpoint")
    """)

    assert project.cli("run").code == 1
    assert status_of(project)["checkpoint"] is None  # rolled back with the work

    assert project.cli("run").code == 0
    assert status_of(project)["checkpoint"] == 1
    assert batches_written(project) == [(0, 1)]


def test_a_timeout_mid_batch_rolls_that_batch_back(sqlite_project: Project) -> None:
    sqlite_project.write_task(VERSION, "slow_batch", """
        import time
        ctx.db.execute("CREATE TABLE IF NOT EXISTS backfilled (batch INTEGER, n INTEGER)")
        for i in range(ctx.checkpoint.get(0), 3):
            with ctx.batch(checkpoint=i + 1):
                ctx.db.execute("INSERT INTO backfilled (batch, n) VALUES (%s, 0)", (i,))
                if i == 1 and ctx.attempt == 1:
                    time.sleep(60)
    """, options="atomic=False, timeout=1")

    first = sqlite_project.cli("run")

    assert first.code == 1 and "timed out after 1 s" in first.both, first.both
    assert batches_written(sqlite_project) == [(0, 1)]
    assert status_of(sqlite_project)["checkpoint"] == 1
    assert sqlite_project.cli("run").code == 0
    assert batches_written(sqlite_project) == [(0, 1), (1, 1), (2, 1)]
