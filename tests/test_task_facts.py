"""What a task file says about itself is read from its @task decorator, never guessed from text.

A task limited to other environments is left alone without being imported, so the options
read without running the file decide whether it runs at all: they are read from the syntax
tree of the decorator, and when they are not literals the file is imported to know.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from afterparty import definition
from afterparty.facts import SourceFacts, read_source_facts
from afterparty.loader import TaskFile, load_tasks
from conftest import Project


def facts_of(tmp_path: Path, source: str | bytes) -> SourceFacts:
    path = tmp_path / "20260101000001_a_task.py"
    if isinstance(source, bytes):
        path.write_bytes(source)
    else:
        path.write_text(textwrap.dedent(source))
    return read_source_facts(str(path))


def status_rows(project: Project, *args: str) -> dict[str, dict[str, object]]:
    result = project.cli("status", "--json", *args)
    assert result.code == 0, result.both
    return {t["name"]: t for t in json.loads(result.out)["tasks"]}


# Options that only look like options: in a comment, in a string, in another call.
DECOYS = {
    "comment above the decorator": ("# was: @task(environments=[\"staging\"])\n", ""),
    "string": ("NOTE = 'use environments=[\"staging\"] for the dry run'\n", ""),
    "another function's call": ("", "configure = dict(environments=['staging'], group='x')"),
}


@pytest.mark.parametrize("decoy", list(DECOYS))
def test_an_option_outside_the_decorator_does_not_keep_a_task_from_running(
        sqlite_project: Project, decoy: str) -> None:
    header, body = DECOYS[decoy]
    ledger = sqlite_project.root / "ledger.txt"
    sqlite_project.write_task("20260101000001", "notify_team",
                              f"{body}\nopen({str(ledger)!r}, 'a').write('ran')",
                              options='description="Tell the team"', header=header)

    before = status_rows(sqlite_project)["notify_team"]
    assert before["state"] == "pending" and before["reason"] is None

    result = sqlite_project.cli("run")
    assert result.code == 0, result.both
    assert "notify_team succeeded" in result.out
    assert ledger.read_text() == "ran"


def test_environments_on_the_decorator_limit_where_the_task_runs(sqlite_project: Project) -> None:
    marker = sqlite_project.root / "imported"
    sqlite_project.write_task("20260101000001", "staging_only",
                              header=f"open({str(marker)!r}, 'a').write('i')\n",
                              options='description="Only on staging", environments=["staging"]')

    assert status_rows(sqlite_project)["staging_only"]["reason"] == "not for this environment"
    result = sqlite_project.cli("run")
    assert result.code == 0, result.both
    assert "staging_only" not in result.out
    assert not marker.exists()  # known from the decorator, without importing the file
    assert status_rows(sqlite_project)["staging_only"]["attempts"] == 0

    staging = sqlite_project.cli("--env", "staging", "run")
    assert staging.code == 0, staging.both
    assert "staging_only succeeded" in staging.out


@pytest.mark.parametrize(("header", "options"), [
    ("ENVIRONMENTS = ['staging']\n", "environments=ENVIRONMENTS"),
    ("def staging_only():\n    return ['staging']\n", "environments=staging_only()"),
], ids=["module constant", "function call"])
def test_environments_that_are_not_literals_are_known_by_importing_the_file(
        sqlite_project: Project, header: str, options: str) -> None:
    marker = sqlite_project.root / "imported"
    path = sqlite_project.write_task(
        "20260101000001", "staging_only", options=options,
        header=header + f"open({str(marker)!r}, 'a').write('i')\n")
    facts = read_source_facts(str(path))
    assert facts.literal is False and facts.environments is None

    result = sqlite_project.cli("run")
    assert result.code == 0, result.both
    assert marker.exists()  # imported to know where it runs...
    assert "staging_only" not in result.out  # ...and not run here
    assert status_rows(sqlite_project)["staging_only"]["attempts"] == 0

    staging = sqlite_project.cli("--env", "staging", "run")
    assert staging.code == 0, staging.both
    assert "staging_only succeeded" in staging.out


def test_a_task_decorator_from_another_module_is_not_afterparty_s(sqlite_project: Project) -> None:
    (sqlite_project.root / "jobs.py").write_text(
        "def task(**options):\n    return lambda func: func\n")
    ledger = sqlite_project.root / "ledger.txt"
    (sqlite_project.tasks_dir / "20260101000001_notify_team.py").write_text(textwrap.dedent(f"""\
        from afterparty import task as release_task
        from jobs import task


        @task(environments=["staging"])
        def nightly():
            pass


        @release_task(description="Tell the team")
        def run(ctx):
            open({str(ledger)!r}, "a").write("ran")
        """))
    facts = read_source_facts(str(sqlite_project.tasks_dir / "20260101000001_notify_team.py"))
    assert facts.literal and facts.environments is None and facts.description == "Tell the team"

    result = sqlite_project.cli("run")
    assert result.code == 0, result.both
    assert "notify_team succeeded" in result.out and ledger.read_text() == "ran"


def test_a_file_that_does_not_parse_is_reported_by_run_with_its_name(sqlite_project: Project) -> None:
    path = sqlite_project.tasks_dir / "20260101000001_broken.py"
    path.write_text('from afterparty import task\n\n@task(environments=["staging"]\ndef run(ctx): pass\n')
    assert read_source_facts(str(path)).literal is False

    result = sqlite_project.cli("run")
    assert result.code == 2, result.both
    assert "20260101000001_broken.py" in result.err and "syntax error" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(("header", "exits"), [
    ("import sys\nsys.exit(3)\n", "calls sys.exit(3) while being imported"),
    ("import click\n\n@click.command()\ndef main():\n    pass\n\nmain()\n", "calls sys.exit("),
], ids=["sys.exit", "click command"])
def test_a_file_that_exits_while_imported_is_a_problem_of_that_file(
        sqlite_project: Project, header: str, exits: str) -> None:
    path = sqlite_project.write_task("20260101000001", "exits", header=header)
    sqlite_project.write_task("20260101000002", "fine")
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1)
                if text.startswith(("sys.exit", "main()")))

    for command in ("run", "check"):
        result = sqlite_project.cli(command)
        assert result.code == 2, (command, result.both)
        assert f"20260101000001_exits.py:{line}: cannot import: {exits}" in result.err, result.err
        assert "Traceback" not in result.err
    rows = status_rows(sqlite_project).values()
    assert [(row["state"], row["attempts"]) for row in rows] == [("pending", 0), ("pending", 0)]


def test_ctrl_c_while_a_task_file_is_imported_still_stops(tmp_path: Path) -> None:
    path = tmp_path / "20260101000001_interrupted.py"
    path.write_text("raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        load_tasks([TaskFile("20260101000001", "interrupted", str(tmp_path))])
    assert definition._collected is None


# The facts read without running a file, for the shapes task files take.

def test_a_file_written_from_the_template(tmp_path: Path) -> None:
    facts = facts_of(tmp_path, '''\
        """Tell customer service that issue 111 is fixed"""

        from afterparty import task


        @task(description="Tell customer service that issue 111 is fixed")
        def run(ctx):
            ctx.log.info("running in %s", ctx.env)
        ''')
    assert facts.literal is True
    assert facts.description == "Tell customer service that issue 111 is fixed"
    assert facts.environments is None
    assert facts.group == definition.DEFAULT_GROUP
    assert facts.manual is False and facts.recurring is False
    assert len(facts.checksum.split()[0]) == 64


@pytest.mark.parametrize("source", [
    "from afterparty import task as release_task\n\n@release_task(environments=['staging'])\n"
    "def run(ctx): pass\n",
    "import afterparty as ap\n\n@ap.task(environments=['staging'])\ndef run(ctx): pass\n",
    "import afterparty\n\n@afterparty.task(environments=['staging'])\ndef run(ctx): pass\n",
    "from afterparty.definition import task\n\n@task(environments=('staging',))\ndef run(ctx): pass\n",
    "from afterparty import definition\n\n@definition.task(environments=['staging'])\n"
    "def run(ctx): pass\n",
    "from afterparty import *\n\n@task(environments=['staging'])\ndef run(ctx): pass\n",
    "from afterparty import task\n\n@other_decorator\n@task(environments=['staging'])\n"
    "async def run(ctx): pass\n",
], ids=["alias", "module alias", "afterparty.task", "definition", "definition module", "star",
        "stacked on async"])
def test_every_spelling_of_afterparty_s_task_is_read(tmp_path: Path, source: str) -> None:
    facts = facts_of(tmp_path, source)
    assert facts.literal is True
    assert facts.environments == ("staging",)


def test_a_bare_decorator_takes_its_description_from_the_docstring(tmp_path: Path) -> None:
    facts = facts_of(tmp_path, '''\
        from afterparty import task

        @task
        def run(ctx):
            """  Restart the   search indexer.

            It reads the new mapping only when it starts.
            """
        ''')
    assert facts.literal is True and facts.environments is None
    assert facts.description == "Restart the search indexer."


def test_an_undo_step_is_not_a_second_task(tmp_path: Path) -> None:
    facts = facts_of(tmp_path, """\
        from afterparty import task

        @task(description="Enable the feature", environments=["production"])
        def run(ctx):
            pass

        @run.undo
        def undo(ctx):
            pass
        """)
    assert facts.literal is True and facts.environments == ("production",)


def test_a_description_over_several_lines_is_one_line(tmp_path: Path) -> None:
    facts = facts_of(tmp_path, '''\
        from afterparty import task

        @task(description="""Tell the team
                             that issue 111 is fixed""")
        def run(ctx):
            """Not this."""
        ''')
    assert facts.description == "Tell the team that issue 111 is fixed"


@pytest.mark.parametrize(("options", "environments", "group", "literal"), [
    ("environments=['production', 'staging']", ("production", "staging"), "default", True),
    ("environments=[]", (), "default", True),
    ("environments=None", None, "default", True),
    ("group='before_migrate'", None, "before_migrate", True),
    ("environments=ENVIRONMENTS", None, "default", False),
    ("environments=environments()", None, "default", False),
    ("environments=[*ENVIRONMENTS]", None, "default", False),
    ("environments=['staging', NAME]", None, "default", False),
    ("environments='staging'", None, "default", False),  # @task refuses it: the import says so
    ("environments=['staging'], group=GROUP", ("staging",), None, False),
    ("**OPTIONS", None, None, False),
    ("environments=['staging'], environments=['production']", None, None, False),
])
def test_options_that_decide_where_a_task_runs(tmp_path: Path, options: str,
                                               environments: tuple[str, ...] | None,
                                               group: str | None, literal: bool) -> None:
    facts = facts_of(tmp_path, f"from afterparty import task\n\n@task({options})\ndef run(ctx): pass\n")
    assert (facts.environments, facts.group, facts.literal) == (environments, group, literal)


@pytest.mark.parametrize(("options", "manual", "recurring"), [
    ("", False, False),
    ("manual=True, owner='ops'", True, False),
    ("recurring=True", False, True),
    ("manual=is_manual(), recurring=RECURRING", None, None),
])
def test_manual_and_recurring(tmp_path: Path, options: str, manual: bool | None,
                              recurring: bool | None) -> None:
    facts = facts_of(tmp_path, f"from afterparty import task\n\n@task({options})\ndef run(ctx): pass\n")
    assert (facts.manual, facts.recurring, facts.literal) == (manual, recurring, True)


@pytest.mark.parametrize("source", [
    # a decorator named task that is not afterparty's
    "from celery import task\n\n@task(environments=['staging'])\ndef run(ctx): pass\n",
    "def task(**options):\n    return lambda f: f\n\n@task(environments=['staging'])\ndef run(ctx): pass\n",
    # afterparty's task, rebound before it decorates
    "from afterparty import task\ntask = make_task()\n\n@task(environments=['staging'])\n"
    "def run(ctx): pass\n",
    "from afterparty import task\nfrom helpers import *\n\n@task(environments=['staging'])\n"
    "def run(ctx): pass\n",
    # not one @task among the top-level definitions
    "from afterparty import task\n",
    "from afterparty import task\n\n@task\ndef a(ctx): pass\n\n@task(environments=['staging'])\n"
    "def b(ctx): pass\n",
    "from afterparty import task\n\n@task(environments=['staging'])\ndef a(ctx): pass\n\n"
    "other = task(lambda ctx: None)\n",
    "from afterparty import task\n\nif True:\n    @task(environments=['staging'])\n"
    "    def run(ctx): pass\n",
    "from afterparty import task\n\n@task(environments=['staging'])\ndef a(ctx): pass\n\n"
    "class More:\n    @task\n    def b(ctx): pass\n",
    "try:\n    from afterparty import task\nexcept ImportError:\n    task = None\n\n"
    "@task(environments=['staging'])\ndef run(ctx): pass\n",
], ids=["celery's task", "a local task", "rebound", "star import after", "no task", "two tasks",
        "task called", "task in a block", "task in a class body", "imported in a block"])
def test_when_the_one_task_cannot_be_told_the_file_is_imported_to_know(tmp_path: Path,
                                                                       source: str) -> None:
    facts = facts_of(tmp_path, source)
    assert facts.literal is False
    assert facts.environments is None  # may run here: never left out on a guess


@pytest.mark.parametrize("source", [
    b"from afterparty import task\n\n@task(environments=['staging']\ndef run(ctx): pass\n",
    b"from afterparty import task\n\n@task(environments=['staging'])\ndef run(ctx): pass\n\x00",
    b"from afterparty import task\n\n@task(description='caf\xe9')\ndef run(ctx): pass\n",
    b"# -*- coding: no-such-codec -*-\nfrom afterparty import task\n",
    b"",
    b"x = " + b"(" * 1000 + b")" * 1000 + b"\n",
    b"x = " + b"-" * 100_000 + b"1\n",
], ids=["syntax error", "NUL byte", "not UTF-8", "unknown encoding", "empty", "too many parentheses",
        "too deeply nested"])
def test_a_file_that_does_not_parse_is_not_literal_and_reading_it_does_not_raise(
        tmp_path: Path, source: bytes) -> None:
    facts = facts_of(tmp_path, source)
    assert facts.literal is False and facts.environments is None and facts.group is None
    assert len(facts.checksum.split()[0]) == 64


def test_a_file_in_another_declared_encoding_is_read(tmp_path: Path) -> None:
    facts = facts_of(tmp_path, "# -*- coding: latin-1 -*-\nfrom afterparty import task\n\n"
                               "@task(description='Café', environments=['staging'])\n"
                               "def run(ctx): pass\n".encode("latin-1"))
    assert facts.literal and facts.description == "Café" and facts.environments == ("staging",)

