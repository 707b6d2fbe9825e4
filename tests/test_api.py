"""The Python API: afterparty.run, status, show and the decisions, with a URL or a SQLAlchemy Engine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import afterparty
from afterparty.errors import TaskFileError, UnknownTaskError
from conftest import Project

NOTE_MODEL = """
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]
"""


def where(project: Project) -> dict[str, str]:
    return {"database": project.database_url, "tasks_dir": str(project.tasks_dir)}


def test_run_and_status_return_what_json_prints(project: Project) -> None:
    project.write_task("20260101000001", "first", "print('hello from first')")
    project.write_task("20260101000002", "second", "raise ValueError('nope')")

    report = afterparty.run(**where(project), env="production")
    assert report.result == "ran" and report.exit_code == 1
    assert [(t.name, t.state) for t in report.tasks] == [("first", "succeeded"), ("second", "failed")]
    assert "ValueError: nope" in (report.tasks[1].error or "")
    assert report.environment == "production"

    status = afterparty.status(**where(project), env="production")
    cli_status = json.loads(project.cli("--env", "production", "status", "--json").out)
    assert status.as_dict() == cli_status
    assert [row.state for row in status.tasks] == ["succeeded", "failed"]

    history = afterparty.show("first", **where(project))
    assert history.as_dict() == json.loads(project.cli("show", "first", "--json").out)
    assert "hello from first" in (history.attempts[0].output or "")

    cli_run = json.loads(project.cli("run", "--json").out)
    api_run = afterparty.run(**where(project)).as_dict()
    for shape in (cli_run, api_run):
        for task in shape["tasks"]:
            task["duration"] = task["error"] = None
    assert api_run == cli_run  # the second failure, reported the same way by both


def test_decisions_and_dry_run(project: Project) -> None:
    project.write_task("20260101000001", "first")
    project.write_task("20260101000002", "second")
    plan = afterparty.run(dry_run=True, **where(project))
    assert plan.result == "dry_run" and [p.name for p in plan.pending] == ["first", "second"]

    decisions = afterparty.mark_done("first", **where(project))
    assert [(d.name, d.before, d.after) for d in decisions] == [("first", "pending", "succeeded")]
    skipped = afterparty.skip("second", reason="done by hand", **where(project))
    assert skipped[0].after == "skipped"
    assert afterparty.run(**where(project)).result == "nothing_to_do"
    afterparty.forget("second", **where(project))
    assert [t.name for t in afterparty.run(**where(project)).tasks] == ["second"]
    with pytest.raises(UnknownTaskError) as unknown:
        afterparty.show("third", **where(project))
    assert unknown.value.exit_code == 2


def test_check_and_new_need_no_database(sqlite_project: Project) -> None:
    path = afterparty.new("tell support", description="Tell support", tasks_dir=str(sqlite_project.tasks_dir))
    assert path.endswith("_tell_support.py")
    assert [f.name for f in afterparty.check(tasks_dir=str(sqlite_project.tasks_dir))] == ["tell_support"]
    (sqlite_project.tasks_dir / "20260101000009_broken.py").write_text("import nowhere_to_be_found\n")
    with pytest.raises(TaskFileError) as broken:
        afterparty.check(tasks_dir=str(sqlite_project.tasks_dir))
    assert "nowhere_to_be_found" in str(broken.value)


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://").replace("mysql://", "mysql+pymysql://")


def test_an_engine_and_ctx_session_commit_orm_work_with_the_record(project: Project) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(sqlalchemy_url(project.database_url))
    project.query("CREATE TABLE notes (id INTEGER PRIMARY KEY, text VARCHAR(50) NOT NULL)")
    project.write_task("20260101000001", "adds_a_note", "ctx.session.add(Note(id=1, text='kept'))",
                       header=NOTE_MODEL)
    project.write_task("20260101000002", "adds_then_fails", """
        ctx.session.add(Note(id=2, text='rolled back'))
        ctx.session.flush()
        raise RuntimeError("after the flush")
    """, header=NOTE_MODEL)
    try:
        report = afterparty.run(database=engine, tasks_dir=str(project.tasks_dir))
        again = afterparty.run(database=engine, tasks_dir=str(project.tasks_dir))
        status = afterparty.status(database=engine, tasks_dir=str(project.tasks_dir))
    finally:
        engine.dispose()
    assert [t.state for t in report.tasks] == ["succeeded", "failed"]
    assert [t.state for t in again.tasks] == ["failed"]  # tried again, and only that one
    assert project.query("SELECT id, text FROM notes") == [(1, "kept")]
    assert [row.attempts for row in status.tasks] == [1, 2]


def test_ctx_session_without_an_engine_fails_the_task_with_a_clear_error(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "wants_a_session", "ctx.session")
    report = afterparty.run(**where(sqlite_project))
    assert report.exit_code == 1
    assert "ctx.session needs a SQLAlchemy engine" in (report.tasks[0].error or "")


def test_the_no_op_command_line_imports_no_framework_and_no_api(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "first")
    assert sqlite_project.cli("run").code == 0
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'flask', 'sqlalchemy', 'flask_sqlalchemy') or m == 'afterparty.api')))\n"
        "from afterparty.cli import main\n"
        "main(['run'])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=sqlite_project.root,
                          env=sqlite_project.env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "no pending tasks" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"
