"""The no-op path every deploy takes: no task file, no other driver, no extras imported."""

from __future__ import annotations

import subprocess
import sys

from conftest import Project

NEVER_ON_THE_NO_OP_PATH = ("afterparty_tasks", "apprise", "django", "flask", "sqlalchemy",
                           "starlette", "jinja2", "celery", "afterparty.web",
                           "afterparty.contrib.celery", "afterparty.long_tasks",
                           # the runner and what it needs only when there is work to do
                           "afterparty.attempt", "afterparty.graph", "afterparty.definition",
                           "afterparty.context",
                           "afterparty.capture", "afterparty.notify")
DRIVERS = {"sqlite": "sqlite3", "postgresql": "psycopg", "mysql": "pymysql"}


def imported_modules(project: Project, *args: str) -> tuple[int, set[str], str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "afterparty", *args], cwd=project.root,
        env=project.env, capture_output=True, text=True, timeout=60, check=False,
    )
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines()
               if line.startswith("import time:")}
    return done.returncode, modules, done.stdout


def test_no_op_run_imports_no_task_file_and_only_its_own_driver(project: Project) -> None:
    marker = project.root / "imported"
    for n in range(5):
        project.write_task(f"2026010100000{n}", f"task_{n}",
                           header=f"open({str(marker)!r}, 'a').write('x')\n")
    assert project.cli("run").code == 0
    marker.unlink()

    code, modules, out = imported_modules(project, "run")
    assert code == 0 and "no pending tasks" in out
    assert not marker.exists()
    backend = project.database_url.split(":", 1)[0]
    assert DRIVERS[backend] in modules
    for other, driver in DRIVERS.items():
        if other != backend:
            assert not any(m == driver or m.startswith(driver + ".") for m in modules), driver
    for name in NEVER_ON_THE_NO_OP_PATH:
        assert not any(m == name or m.startswith(name + ".") for m in modules), name


def test_pending_run_imports_only_pending_task_files(project: Project) -> None:
    marker = project.root / "imported"
    project.write_task("20260101000001", "old", header=f"open({str(marker)!r}, 'a').write('old')\n")
    assert project.cli("run").code == 0
    marker.unlink()
    project.write_task("20260101000002", "new", header=f"open({str(marker)!r}, 'a').write('new')\n")
    assert project.cli("run").code == 0
    assert marker.read_text() == "new"
