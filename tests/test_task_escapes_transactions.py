"""A task's own transaction control: the runner opens the task's transaction before its body,
so a driver's transaction block is a savepoint inside it, and every way of ending that
transaction through ctx.db is refused (issue 9, hole 4)."""

from __future__ import annotations

import signal
from pathlib import Path

from conftest import Project
from test_task_escapes import backend, project_on, states, stop, wait_until

# --- hole 4: the task's transaction is open before its body --------------------------------

def test_a_psycopg_transaction_block_is_rolled_back_when_the_task_fails(tmp_path: Path,
                                                                        postgresql_url: str) -> None:
    """`with ctx.db.transaction():` in a task that is not the first becomes a savepoint."""
    project = project_on(tmp_path, postgresql_url)
    project.query("CREATE TABLE shipped (note TEXT)")
    project.write_task("20260101000001", "first")
    project.write_task("20260101000002", "block_then_raise", """
        with ctx.db.transaction():
            ctx.db.execute("INSERT INTO shipped VALUES ('inner')")
        raise RuntimeError("after the block")
    """)
    result = project.cli("run")
    assert result.code == 1, result.both
    assert project.query("SELECT note FROM shipped") == []


def test_a_psycopg_transaction_block_is_not_duplicated_after_sigkill(tmp_path: Path,
                                                                     postgresql_url: str) -> None:
    """A runner killed after the task's `with ctx.db.transaction():` block committed nothing: the
    next run runs the task once more and its row is there once."""
    project = project_on(tmp_path, postgresql_url)
    project.query("CREATE TABLE shipped (note TEXT)")
    started = project.root / "after_block"
    project.write_task("20260101000001", "first")
    project.write_task("20260101000002", "block_then_sleep", f"""
        import time
        with ctx.db.transaction():
            ctx.db.execute("INSERT INTO shipped VALUES ('inner')")
        if ctx.attempt == 1:
            open({str(started)!r}, "w").close()
            time.sleep(120)
    """)
    runner = project.popen("run")
    try:
        wait_until(started.exists, "the task to leave its transaction block")
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
    finally:
        stop(runner)
    assert project.query("SELECT note FROM shipped") == []
    again = project.cli("run")
    assert again.code == 0, again.both
    assert project.query("SELECT note FROM shipped") == [("inner",)]
    assert states(project)["block_then_sleep"] == "succeeded"


REFUSED = {
    "sqlite": {"execute_commit": 'ctx.db.execute("COMMIT")',
               "isolation_level": "ctx.db.isolation_level = None",
               "executescript": 'ctx.db.executescript("SELECT 1")'},
    "postgresql": {"execute_commit": 'ctx.db.execute("COMMIT")',
                   "autocommit_attribute": "ctx.db.autocommit = True",
                   "bytes_commit": 'ctx.db.execute(b"COMMIT")',
                   "composed_commit": 'import psycopg.sql\nctx.db.execute(psycopg.sql.SQL("COMMIT"))',
                   "prepare_transaction": "ctx.db.execute(\"PREPARE TRANSACTION 'x'\")"},
    "mysql": {"autocommit_method": "ctx.db.autocommit(True)", "begin": "ctx.db.begin()",
              "bytes_commit": 'ctx.db.cursor().execute(b"COMMIT")',
              "set_local_autocommit": 'ctx.db.cursor().execute("SET LOCAL autocommit = 1")'},
}
# Statements that look like transaction control and are not, with the rows they add.
ALLOWED = {
    "sqlite": {"trigger": ('ctx.db.execute("CREATE TABLE audit (note TEXT)")\n'
                           'ctx.db.execute("CREATE TRIGGER audited AFTER INSERT ON audit BEGIN '
                           "INSERT INTO shipped VALUES ('from trigger'); END\")\n"
                           "ctx.db.execute(\"INSERT INTO audit VALUES ('x')\")", ["from trigger"])},
    "postgresql": {
        "do_block": ('ctx.db.execute("DO $$ BEGIN INSERT INTO shipped VALUES '
                     "('from do'); END $$\")", ["from do"]),
        "atomic_function": ('ctx.db.execute("CREATE FUNCTION ap_one() RETURNS int LANGUAGE SQL '
                            'BEGIN ATOMIC SELECT 1; END")', []),
    },
}


def test_ending_the_task_transaction_is_refused_and_nothing_is_kept(project: Project) -> None:
    """COMMIT through ctx.db in any spelling fails the task saying why and keeps none of its work;
    a PL/pgSQL block and a literal 'commit' are ordinary statements."""
    project.query("CREATE TABLE shipped (note VARCHAR(40))")
    refused = {"cursor_commit": 'ctx.db.cursor().execute("commit")',
               "cursor_connection_commit": "ctx.db.cursor().connection.commit()",
               "with_block": "with ctx.db:\n    pass", **REFUSED[backend(project)]}
    allowed = {"commit_literal": ("ctx.db.cursor().execute(\"INSERT INTO shipped VALUES ('commit')\")",
                                  ["commit"]), **ALLOWED.get(backend(project), {})}
    tasks = [*refused.items(), *((name, code) for name, (code, _) in allowed.items())]
    for number, (name, code) in enumerate(tasks, 1):
        insert = f"ctx.db.cursor().execute(\"INSERT INTO shipped VALUES ('{name}')\")"
        project.write_task(f"202601010000{number:02}", name, f"{insert}\n{code}")
    result = project.cli("run", "--keep-going")
    assert result.code == 1, result.both
    assert states(project) == {**dict.fromkeys(refused, "failed"), **dict.fromkeys(allowed, "succeeded")}
    for name in refused:
        line = next(line for line in result.out.splitlines() if f" {name} failed" in line)
        assert "is not allowed: " in line, line
    kept = sorted(str(note) for note, in project.query("SELECT note FROM shipped"))
    assert kept == sorted([*allowed, *(row for _, rows in allowed.values() for row in rows)])
