"""The deploy recipes' shared entrypoint (examples/deploy/docker-entrypoint.sh), run for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import Project

ENTRYPOINT = Path(__file__).resolve().parent.parent / "examples" / "deploy" / "docker-entrypoint.sh"


def start(project: Project, *command: str) -> subprocess.CompletedProcess[str]:
    """Start a "container": the entrypoint with the app's command, afterparty on PATH."""
    bin_dir = os.path.dirname(sys.executable)
    env = {**project.env, "PATH": f"{bin_dir}{os.pathsep}{project.env.get('PATH', '')}"}
    return subprocess.run([str(ENTRYPOINT), *command], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_app_starts_after_its_release_tasks_ran(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "only_in_production", "print(ctx.env)")
    started = start(sqlite_project, "echo", "app serving")
    assert started.returncode == 0, started.stderr
    assert "production" in started.stdout  # the recipe sets AFTERPARTY_ENV=production
    assert started.stdout.strip().endswith("app serving")
    again = start(sqlite_project, "echo", "app serving")
    assert "no pending tasks" in again.stdout and again.returncode == 0


def test_a_failing_task_keeps_the_new_version_from_starting(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "breaks", "raise RuntimeError('no')")
    started = start(sqlite_project, "echo", "app serving")
    assert started.returncode == 1
    assert "app serving" not in started.stdout
