"""examples/flask_app end to end: `flask afterparty ...` through the app's Flask-SQLAlchemy engine."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from examples import Example, copy_example, python

WELCOME, TELL = "20261126093000", "20261126094500"
ORM = "from sqlalchemy import update\nfrom shop import Customer"


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Example:
    """The example app with its tables created, on SQLite or a fresh PostgreSQL database."""
    url = None if request.param == "sqlite" else str(request.getfixturevalue("postgresql_url"))
    sqlalchemy_url = url.replace("postgresql://", "postgresql+psycopg://", 1) if url else None
    root, env = copy_example("flask_app", tmp_path, sqlalchemy_url)
    env["FLASK_APP"] = "shop"
    example = Example(root, url or f"sqlite:///{root / 'instance' / 'shop.sqlite3'}", env,
                      [python(), "-m", "flask"])
    created = example.run("init-db")
    assert created.code == 0, created.both
    return example


def test_flask_afterparty_runs_each_task_exactly_once(app: Example) -> None:
    first = app.run("afterparty", "run")
    assert first.code == 0, first.both
    assert f"{WELCOME} welcome_points succeeded" in first.out
    assert "notice held until the task succeeds: Loyalty points are live" in first.out
    assert app.points() == {"ada": 100, "grace": 100}

    again = app.run("afterparty", "run")
    assert again.code == 0 and "no pending tasks" in again.out
    assert app.points() == {"ada": 100, "grace": 100}
    # Recorded through the app's engine, in the app's database.
    assert app.query("SELECT version, state FROM afterparty_tasks ORDER BY version") == [
        (WELCOME, "succeeded"), (TELL, "succeeded")]
    status = json.loads(app.run("afterparty", "status", "--json").out)
    assert [t["state"] for t in status["tasks"]] == ["succeeded", "succeeded"]


def test_a_raising_task_leaves_no_orm_change_behind(app: Example) -> None:
    app.write_task("20261127000000_breaks.py", ORM, """
        ctx.session.execute(update(Customer).values(loyalty_points=Customer.loyalty_points + 1))
        ctx.session.add(Customer(name="linus"))
        ctx.session.flush()
        raise RuntimeError("the partner API said no")
    """)
    result = app.run("afterparty", "run")
    assert result.code == 1, result.both
    assert "breaks failed" in result.out and "the partner API said no" in result.out
    assert app.points() == {"ada": 100, "grace": 100}
    assert app.query("SELECT state FROM afterparty_tasks WHERE version = '20261127000000'") == [("failed",)]


def test_orm_changes_left_unflushed_are_committed_with_the_record(app: Example) -> None:
    app.write_task("20261127000000_adds.py", "from shop import Customer", """
        ctx.session.add(Customer(name="linus", loyalty_points=7))
    """)
    assert app.run("afterparty", "run").code == 0
    assert app.points()["linus"] == 7


def test_session_commit_in_a_task_does_not_commit_before_the_runner(app: Example) -> None:
    app.write_task("20261127000000_commits_then_fails.py", "from shop import Customer", """
        ctx.session.add(Customer(name="linus"))
        ctx.session.commit()
        raise RuntimeError("after commit")
    """)
    assert app.run("afterparty", "run").code == 1
    assert "linus" not in app.points()


def test_deploys_started_together_run_each_task_once(app: Example) -> None:
    app.write_task("20261127000000_slow.py", f"import time\n{ORM}", """
        ctx.session.execute(update(Customer).values(loyalty_points=Customer.loyalty_points + 1))
        time.sleep(1)
    """)
    runners = [app.popen("afterparty", "run", "--wait", "120") for _ in range(4)]
    results = [(r.wait(timeout=300), r.stdout.read(), r.stderr.read()) for r in runners]  # type: ignore[union-attr]
    assert all(code == 0 for code, _, _ in results), results
    assert app.points() == {"ada": 101, "grace": 101}
    attempts = app.query("SELECT version, COUNT(*) FROM afterparty_attempts GROUP BY version")
    assert sorted(attempts) == [(WELCOME, 1), (TELL, 1), ("20261127000000", 1)]


def test_the_app_database_is_the_tracking_database(app: Example) -> None:
    refused = app.run("afterparty", "--database-url", "sqlite:///other.db", "run")
    assert refused.code == 2
    assert "SQLALCHEMY_DATABASE_URI" in refused.err
    helped = app.run("afterparty", "--help")
    assert helped.code == 0 and "Usage: flask afterparty" in helped.out and "mark-done" in helped.out
    assert "Usage: flask afterparty run" in app.run("afterparty", "run", "--help").out
    assert "afterparty" in app.run("--help").out  # listed among the app's commands


PLAIN_APP = '''
from flask import Flask

app = Flask(__name__)
app.config["AFTERPARTY_DATABASE_URL"] = "sqlite:///records.sqlite3"
app.config["AFTERPARTY_ENV"] = "staging"
'''


def test_an_app_without_flask_sqlalchemy_uses_the_configured_url(tmp_path: Path) -> None:
    root, env = copy_example("flask_app", tmp_path, None)
    (root / "plain.py").write_text(PLAIN_APP)
    (root / "release_tasks" / "20261126093000_welcome_points.py").unlink()
    env["FLASK_APP"] = "plain"
    example = Example(root, f"sqlite:///{root / 'records.sqlite3'}", env, [python(), "-m", "flask"])
    (root / "release_tasks" / "20261126094500_tell_the_team.py").write_text(
        "from afterparty import task\n\n@task\ndef run(ctx):\n    ctx.notify('hello')\n")
    result = example.run("afterparty", "run")
    assert result.code == 0, result.both
    assert example.query("SELECT state, environment FROM afterparty_attempts") == [("succeeded", "staging")]


def test_an_engine_on_a_database_that_does_not_exist_fails_at_once(tmp_path: Path,
                                                                   postgresql_url: str) -> None:
    """SQLALCHEMY_DATABASE_URI naming a database that is not there: exit 4 at once, one line."""
    missing = postgresql_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    root, env = copy_example("flask_app", tmp_path, f"{missing}/shopp_typo")
    env["FLASK_APP"] = "shop"
    app = Example(root, postgresql_url, env, [python(), "-m", "flask"])
    started = time.monotonic()
    status = app.run("afterparty", "status")
    assert status.code == 4, status.both
    assert time.monotonic() - started < 10
    (line,) = status.err.strip().splitlines()
    assert "shopp_typo" in line and "does not exist" in line and "within" not in line
