"""One way to run SQL in a task on every backend: ctx.db.execute/query with %s placeholders.

The quickstart example, the `new` template's hints and the manual's SQL snippet run as they
are written, on SQLite, PostgreSQL and MySQL/MariaDB.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import Project

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart" / "release_tasks"


def manual_python_blocks(marker: str) -> list[str]:
    """The ```python blocks of the README and the manual (docs/) that contain ``marker``."""
    text = "".join(page.read_text() for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))])
    return [block for block in re.findall(r"```python[^\n]*\n(.*?)```", text, re.S) if marker in block]


def test_the_quickstart_runs_on_every_backend(project: Project) -> None:
    """The quickstart's tasks, copied as they are, run and record their row."""
    for path in QUICKSTART.glob("*.py"):
        shutil.copy(path, project.tasks_dir / path.name)
    result = project.cli("--env", "staging", "run")
    assert result.code == 0, result.both
    assert "2 succeeded" in result.out
    assert "launch recorded for staging - 1 so far" in result.out
    assert project.query("SELECT feature, env FROM launches") == [("search", "staging")]


def test_the_new_templates_sql_hints_run_on_every_backend(project: Project) -> None:
    """`afterparty new`, with its commented ctx.db lines switched on, runs as written."""
    project.query("CREATE TABLE accounts (id INTEGER PRIMARY KEY, plan VARCHAR(20))")
    project.query("INSERT INTO accounts (id, plan) VALUES (1, 'gold'), (2, 'free')")
    made = project.cli("new", "upgrade_gold")
    assert made.code == 0, made.both
    path = project.root / made.out.strip()
    source = path.read_text()
    assert "ctx.db.execute(" in source
    # Uncomment the example: "    #     code" -> "    code" (keeping its relative indent).
    path.write_text(re.sub(r"^    #     (?=ctx\.db|for |    ctx\.log)", "    ", source, flags=re.M))
    result = project.cli("run")
    assert result.code == 0, result.both
    assert "account 1 is now on pro" in result.out
    assert sorted(project.query("SELECT id, plan FROM accounts")) == [(1, "pro"), (2, "free")]


def test_the_manuals_sql_snippet_runs_on_every_backend(project: Project) -> None:
    """The manual's task that runs SQL through ctx.db (docs/reference/ctx.md), pasted into a task file."""
    blocks = [block for block in manual_python_blocks("ctx.db.") if "gold customer(s) credited" in block]
    assert blocks, "the manual shows how to run SQL in a task"
    project.query("CREATE TABLE customers (name VARCHAR(50), plan VARCHAR(20), credit INTEGER)")
    project.query("INSERT INTO customers VALUES ('acme', 'gold', 0), ('bob', 'free', 0)")
    for number, block in enumerate(blocks, 1):
        (project.tasks_dir / f"2026010100000{number}_manual_sql_{number}.py").write_text(block)
    result = project.cli("run")
    assert result.code == 0, result.both
    assert project.query("SELECT name, credit FROM customers WHERE plan = 'gold'") == [("acme", 10)]
    assert "1 gold customer(s) credited" in result.out


def test_placeholders_are_the_same_and_the_raw_connection_is_reachable(project: Project) -> None:
    """%s, %(name)s and %% mean the same on every backend; ctx.db.raw is the driver's."""
    project.write_task("20260101000001", "placeholders", """
        assert ctx.db.paramstyle == "format"
        ctx.db.execute("CREATE TABLE notes (body VARCHAR(50))")
        ctx.db.execute("INSERT INTO notes (body) VALUES (%s)", ("100%",))
        ctx.db.executemany("INSERT INTO notes (body) VALUES (%s)", [("a",), ("b",)])
        ctx.db.cursor().execute("INSERT INTO notes (body) VALUES (%(body)s)", {"body": "c"})
        rows = ctx.db.query("SELECT body FROM notes WHERE body LIKE '10%%' AND body <> %s", ("x",))
        print("percent rows:", rows)
        print("all:", [b for (b,) in ctx.db.query("SELECT body FROM notes ORDER BY body")])
        print("raw:", sorted({c.__module__.split(".")[0] for c in type(ctx.db.raw).__mro__}))
    """)
    result = project.cli("run")
    assert result.code == 0, result.both
    assert "percent rows: [('100%',)]" in result.out
    assert "all: ['100%', 'a', 'b', 'c']" in result.out
    driver = {"sqlite": "sqlite3", "postgresql": "psycopg", "mysql": "pymysql"}
    raw_modules = result.out.split("raw: ", 1)[1].splitlines()[0]
    assert repr(driver[project.database_url.split(":")[0]]) in raw_modules


def test_the_test_new_writes_passes_from_any_directory(sqlite_project: Project, tmp_path: Path) -> None:
    """`new --with-test` writes a test that passes when pytest runs from elsewhere."""
    made = sqlite_project.cli("new", "say_hello", "--with-test")
    assert made.code == 0, made.both
    test_file = sqlite_project.root / made.out.splitlines()[1]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         str(test_file)], cwd=elsewhere, env=sqlite_project.env, capture_output=True, text=True,
        timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_quickstart_says_no_release_id_where_none_is_known(sqlite_project: Project) -> None:
    """Outside a git checkout and without AFTERPARTY_RELEASE: never "release None"."""
    for path in QUICKSTART.glob("*.py"):
        shutil.copy(path, sqlite_project.tasks_dir / path.name)
    env = {k: v for k, v in sqlite_project.env.items()
           if not k.endswith(("_SHA", "_COMMIT", "SOURCE_VERSION", "_REF"))}
    sqlite_project.env.clear()
    sqlite_project.env.update(env)
    result = sqlite_project.cli("run")
    assert result.code == 0, result.both
    assert "release: no release id" in result.both
    assert "None" not in result.both
