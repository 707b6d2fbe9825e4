"""The pytest fixture ``afterparty_task``: run a release task against a throw-away database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from afterparty.testing import TaskRun


class TaskRunner:
    """Runs task files against one SQLite database of the test's own."""

    def __init__(self, directory: Path) -> None:
        self.database_url = f"sqlite:///{directory / 'afterparty-test.sqlite3'}"

    def run(self, path: str | Path, **options: Any) -> TaskRun:
        """Run a task file's body once; options as for afterparty.testing.run_task."""
        from afterparty.testing import run_task

        return run_task(path, database_url=options.pop("database_url", self.database_url), **options)


@pytest.fixture
def afterparty_task(tmp_path: Path) -> TaskRunner:
    """Run release tasks in a test: ``afterparty_task.run("release_tasks/..._x.py")``."""
    return TaskRunner(tmp_path)
