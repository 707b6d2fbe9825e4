"""The runnable examples (examples/django_site, examples/flask_app), copied and run as a user would."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from conftest import Result, clean_env, query

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

TASK = """\
from afterparty import task
{imports}


@task(description="a task added by the test")
def run(ctx):
{body}
"""


@dataclass
class Example:
    """A copy of an example project and the database it uses."""

    root: Path
    database_url: str  # as the test reads it; None-like "sqlite" examples use their own file
    env: dict[str, str]
    command: list[str]

    def run(self, *args: str, timeout: float = 120) -> Result:
        """Run the example's command line (``python manage.py ...`` or ``flask ...``)."""
        done = subprocess.run([*self.command, *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        return Result(done.returncode, done.stdout, done.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*self.command, *args], cwd=self.root, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def query(self, sql: str) -> list[tuple[object, ...]]:
        return query(self.database_url, sql)

    def points(self) -> dict[object, object]:
        return dict(self.query("SELECT name, loyalty_points FROM " + self.customer_table))

    @property
    def customer_table(self) -> str:
        return "shop_customer" if (self.root / "manage.py").exists() else "customer"

    def write_task(self, file_name: str, imports: str, body: str) -> None:
        (self.root / "release_tasks" / file_name).write_text(TASK.format(
            imports=imports, body=textwrap.indent(textwrap.dedent(body).strip(), "    ")))


def copy_example(name: str, tmp_path: Path, database_url: str | None) -> tuple[Path, dict[str, str]]:
    """A copy of ``examples/<name>`` in tmp_path and an environment without afterparty's variables."""
    root = tmp_path / name
    shutil.copytree(EXAMPLES / name, root, ignore=shutil.ignore_patterns(
        "__pycache__", "*.sqlite3", "instance"))
    env = clean_env("")
    del env["AFTERPARTY_DATABASE_URL"]
    if database_url:
        env["DATABASE_URL"] = database_url
    return root, env


def python() -> str:
    return sys.executable
