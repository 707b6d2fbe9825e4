"""Every example in the manual runs: README.md and docs/**/*.md, page by page, as a reader pastes them.

Each page is one shell session, in a fresh directory with a clean environment (no
``AFTERPARTY_*`` variable, no ``DATABASE_URL``, no CI release variable): its code blocks run
in the order they appear, so a later block sees the files, the variables and the directory an
earlier one left.

- ```` ```sh ```` (``bash``, ``shell``): the commands, run by bash. A command that fails ends
  the page with its block's output, unless the page handles it (``cmd || echo "exit code $?"``).
- ```` ```python ````: a script, run by ``python`` (the virtual environment's).
- A block with a file name as its title (```` ```python title="release_tasks/2026..._x.py" ````,
  ```` ```toml title="pyproject.toml" ````) is that file: it is written there.
- ```` ```text title="Output" ```` is what the block before it printed (stdout and stderr as
  a terminal shows them). Both are compared after times, durations and pids are made alike;
  ``...`` in a line stands for any text, and a line of only ``...`` for any lines.
- ``<!-- not run: REASON -->`` right before a shell or Python block: the block is not run,
  and the page says why (the reason, here, is for the person who reads the Markdown).
- ``<!-- same as: PATH -->`` right before a block: it is the repository's file PATH, word for
  word (the file is run by its own tests).

A page may say, anywhere in it:

- ``<!-- run on: sqlite, postgresql -->``: it is about a database server; it runs once per
  database named, with ``AFTERPARTY_DATABASE_URL`` pointing to a fresh one.
- ``<!-- needs: redis -->``: a Redis server of the test's own, as ``CELERY_BROKER_URL``
  (which Celery reads before the broker an app names).

Blocks of other languages (YAML, TOML without a file name, JSON, a Procfile) are not run here;
tests/test_deploy_recipes.py loads the deploy recipes', tests/test_docs_reference.py checks the
JSON shapes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from test_celery import redis_url  # noqa: F401  (a fixture: a Redis server of the test's own)

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

SHELL = {"sh", "bash", "shell"}
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.M | re.S)
ANNOTATION = re.compile(r"<!--\s*(?P<kind>not run|same as)\s*:\s*(?P<value>.*?)\s*-->\s*\Z", re.S)
TITLE = re.compile(r'title="(?P<title>[^"]*)"')
PAGE_DATABASES = re.compile(r"<!--\s*run on:\s*(?P<names>[a-z, ]+?)\s*-->")
PAGE_NEEDS = re.compile(r"<!--\s*needs:\s*(?P<names>[a-z, ]+?)\s*-->")
# Variables a CI or a platform sets that would give ctx.release a value the page does not show.
RELEASE_VARIABLES = ("HEROKU_SLUG_COMMIT", "HEROKU_RELEASE_VERSION", "GITHUB_SHA", "CI_COMMIT_SHA",
                     "RENDER_GIT_COMMIT", "FLY_IMAGE_REF", "SOURCE_VERSION")
END_OF_FILE = "AFTERPARTY_DOCS_END_OF_FILE"
PAGE_TIMEOUT = 600


@dataclass
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int
    language: str
    title: str | None
    body: str
    annotation: tuple[str, str] | None  # ("not run", reason) or ("same as", path)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def is_output(self) -> bool:
        return self.language == "text" and (self.title or "").lower() == "output"

    @property
    def file_name(self) -> str | None:
        """The file this block is, when its title names one (``release_tasks/x.py``)."""
        title = self.title or ""
        return title if re.fullmatch(r"[\w.-]+(/[\w.-]+)*\.[a-z]+|[\w.-]+/[\w.-]+", title) else None

    @property
    def is_code(self) -> bool:
        """A block a reader would paste into a shell or run with Python."""
        return self.language in SHELL or self.language == "python"


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        info = match["info"].strip()
        language = info.split()[0].lower() if info else ""
        title = TITLE.search(info)
        indent = match["indent"]
        body = "".join(line[len(indent):] if line.startswith(indent) else line
                       for line in match["body"].splitlines(keepends=True))
        before = text[:match.start()].rstrip()
        annotation = ANNOTATION.search(before[before.rfind("<!--"):]) if before.endswith("-->") else None
        found.append(Block(
            page, text.count("\n", 0, match.start()) + 1, language,
            title["title"] if title else None, body,
            (annotation["kind"], annotation["value"]) if annotation else None))
    return found


@dataclass
class Step:
    """What the session does for one block: run it, or write it to a file."""

    block: Block
    script: str
    expected: Block | None = None  # the output block that follows it


@dataclass
class Session:
    """A page as one bash script, and what each of its steps should print."""

    page: Path
    steps: list[Step] = field(default_factory=list)
    not_run: list[Block] = field(default_factory=list)
    same_as: list[Block] = field(default_factory=list)

    @property
    def databases(self) -> list[str]:
        found = PAGE_DATABASES.search(self.page.read_text(encoding="utf-8"))
        return [name.strip() for name in found["names"].split(",")] if found else []

    @property
    def needs(self) -> set[str]:
        found = PAGE_NEEDS.search(self.page.read_text(encoding="utf-8"))
        return {name.strip() for name in found["names"].split(",")} if found else set()

    def script(self) -> str:
        lines = ["set -E", 'trap \'status=$?; printf "\\n@@failed %s@@\\n" "$status"; exit 99\' ERR']
        for number, step in enumerate(self.steps):
            lines += [f"printf '@@block {number}@@\\n'", step.script]
        lines += ["printf '@@block end@@\\n'"]
        return "\n".join(lines) + "\n"


def session_of(page: Path) -> Session:
    session = Session(page)
    previous: Step | None = None
    for block in blocks_of(page):
        if block.annotation and block.annotation[0] == "not run":
            assert block.annotation[1], f"{block.where}: `not run` needs a reason"
            session.not_run.append(block)
            previous = None
        elif block.annotation and block.annotation[0] == "same as":
            session.same_as.append(block)
            previous = None
        elif block.is_output:
            assert previous is not None, f"{block.where}: an output block follows no block that runs"
            assert previous.expected is None, f"{block.where}: a second output block for one command"
            previous.expected = block
        elif block.file_name:
            path = shlex.quote(block.file_name)
            write = f"mkdir -p \"$(dirname {path})\" && cat > {path} <<'{END_OF_FILE}'\n"
            session.steps.append(Step(block, f"{write}{block.body}{END_OF_FILE}"))
            previous = None
        elif block.language in SHELL:
            previous = Step(block, block.body.rstrip("\n"))
            session.steps.append(previous)
        elif block.language == "python":
            previous = Step(block, f"python - <<'{END_OF_FILE}'\n{block.body}{END_OF_FILE}")
            session.steps.append(previous)
    return session


# --- Comparing what a page shows with what was printed -----------------------------------------

LIKE = [
    # 2026-11-26 10:00:03, 2026-11-26T09:31:02.120+00:00, 2026-11-26T10:00:03.120431+00:00
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)?s\b"), "<seconds>"),  # in 0.01s, running for 12s
    (re.compile(r"\bpid \d+"), "pid <pid>"),
]


def alike(text: str) -> str:
    for pattern, replacement in LIKE:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def shown_pattern(shown: str) -> re.Pattern[str]:
    parts = []
    for line in alike(shown).splitlines():
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split("...")) + r"\n")
    return re.compile("".join(parts), re.S)


def matches(shown: str, printed: str) -> bool:
    return shown_pattern(shown).fullmatch(alike(printed) + "\n") is not None


# --- Running a page ---------------------------------------------------------------------------

def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AFTERPARTY_", "PYTEST_", "CELERY_")) and k != "DATABASE_URL"
           and k not in RELEASE_VARIABLES and k != "VIRTUAL_ENV"}
    bin_dir = os.path.dirname(sys.executable)
    home = tmp_path / "home"
    home.mkdir()
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", HOME=str(home),
               TMPDIR=str(tmp_path), PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1",
               VIRTUAL_ENV=str(Path(bin_dir).parent), LC_ALL="C.UTF-8")
    env.pop("NO_COLOR", None)
    return env


def run_session(session: Session, cwd: Path, env: dict[str, str]) -> dict[str, str]:
    """Run the page's script; what each block printed, by its number."""
    process = subprocess.Popen(["bash", "-c", session.script()], cwd=cwd, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=PAGE_TIMEOUT)
    finally:
        # A server a page started and did not stop, or a page that timed out.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    printed: dict[str, str] = {}
    pieces = re.split(r"@@block (\d+|end)@@\n", output)
    for number, text in zip(pieces[1::2], pieces[2::2], strict=True):
        printed[number] = text
    return printed


def check_session(session: Session, printed: dict[str, str], database: str) -> None:
    on = "" if database == "default" else f" (on {database})"
    for number, step in enumerate(session.steps):
        if str(number) not in printed:
            pytest.fail(f"{step.block.where}{on}: the page stopped before this block")
        text = printed[str(number)]
        failed = re.search(r"\n?@@failed (\d+)@@\n", text)
        if failed:
            pytest.fail(f"{step.block.where}{on}: a command failed (exit {failed[1]}); it printed:\n"
                        f"{text[:failed.start()]}")
        if step.expected is not None and not matches(step.expected.body, text):
            pytest.fail(f"{step.expected.where}{on}: the page shows\n{step.expected.body}\n"
                        f"but the block at {step.block.where} printed\n{text}")
    assert "end" in printed, f"{session.page}{on}: the page did not run to its end"


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


SESSIONS = [session_of(page) for page in PAGES]


@pytest.mark.parametrize("session", [s for s in SESSIONS if s.steps], ids=lambda s: page_id(s.page))
def test_the_page_runs_as_written(session: Session, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A page about a server runs once per database it names, one after the other (its
    examples may start a server on a fixed port)."""
    for database in session.databases or ["default"]:
        directory = tmp_path / database
        directory.mkdir()
        env = environment(directory)
        if database == "sqlite":
            env["AFTERPARTY_DATABASE_URL"] = f"sqlite:///{directory / 'records.sqlite3'}"
        elif database != "default":
            env["AFTERPARTY_DATABASE_URL"] = str(request.getfixturevalue(f"{database}_url"))
        if "redis" in session.needs:
            env["CELERY_BROKER_URL"] = str(request.getfixturevalue("redis_url"))
        work = directory / "work"
        work.mkdir()
        check_session(session, run_session(session, work, env), database)


@pytest.mark.parametrize("session", [s for s in SESSIONS if s.same_as], ids=lambda s: page_id(s.page))
def test_a_block_that_shows_a_file_of_the_repository_is_that_file(session: Session) -> None:
    for block in session.same_as:
        path = ROOT / block.annotation[1]  # type: ignore[index]
        assert path.is_file(), f"{block.where}: {path} does not exist"
        assert block.body == path.read_text(encoding="utf-8"), f"{block.where} differs from {path}"


def test_every_block_a_reader_would_paste_is_run_or_says_why_not() -> None:
    """No page leaves a shell or Python block out silently: it runs, or is marked and explained."""
    for session in SESSIONS:
        for block in blocks_of(session.page):
            ran = block.line in {step.block.line for step in session.steps}
            if block.is_code and not ran:
                assert block.annotation, f"{block.where}: neither run nor marked `<!-- not run: why -->`"


def test_the_comparison_makes_times_alike_and_reads_ellipses() -> None:
    shown = "[1/1] 20261126093000 tell_support ...\n...\nsummary: 1 succeeded in 0.10s\n"
    printed = ("[1/1] 20261126093000 tell_support ...\n2026-12-04 15:39:30 INFO a\nb\n"
               "summary: 1 succeeded in 0.37s\n")
    assert matches(shown, printed)
    assert not matches(shown, printed.replace("1 succeeded", "1 failed"))
    assert matches("by ... pid 1, release -", "by root@vm pid 11585, release -")
    assert not matches("one\ntwo", "one\n")
