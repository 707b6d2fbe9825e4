"""Which database the records are in: a SQLite file reached by two hard links is refused."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import Project

VERSION = "20260101000000"


def test_a_database_file_with_two_hard_links_is_refused(sqlite_project: Project, tmp_path: Path) -> None:
    project = sqlite_project
    path = Path(project.database_url.split("sqlite:///", 1)[1])
    project.write_task(VERSION, "first")
    assert project.cli("run").code == 0
    second = tmp_path / "second-name.sqlite3"
    os.link(path, second)

    for name in (path, second):
        project.write_task(str(int(VERSION) + 1), "second")
        result = project.cli("run", extra_env={"AFTERPARTY_DATABASE_URL": f"sqlite:///{name}"})
        assert result.code == 4, result.both
        line = result.err.strip()
        assert line == (
            f"afterparty: error: the SQLite database {name} has 2 hard links: SQLite keeps its "
            "write-ahead log beside one path, so two paths would see two databases; use one path "
            "(a symlink is fine) and remove the other links (find them with: "
            f"find / -xdev -samefile {name})"), line

    second.unlink()
    symlink = tmp_path / "current.sqlite3"
    symlink.symlink_to(path)
    result = project.cli("run", extra_env={"AFTERPARTY_DATABASE_URL": f"sqlite:///{symlink}"})
    assert result.code == 0, result.both
    assert project.query(f"SELECT state FROM afterparty_tasks WHERE version = '{int(VERSION) + 1}'") \
        == [("succeeded",)]
