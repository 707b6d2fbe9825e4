"""Benchmark: whole afterparty processes against interpreter floors and peer tools, as ratios.

    python bench/run.py [--quick] [--postgres-url URL] [--runs N] [--output PATH]

Every scenario builds its own temporary project, runs each contender once as a warm-up and
then ``--runs`` times, the contenders taking turns (A B C A B C ...) so that a machine
whose speed drifts slows all of them alike. Wall time comes from a monotonic clock around
the whole process, peak memory from ``os.wait4`` (the process's maximum resident set), both
taken by a small launcher process (bench/launcher.py) so that the benchmark's own size is not
counted in the peaks.
Ratios are medians of the ratios taken round by round, so they hold on a noisy machine.

Peers (yoyo-migrations, Alembic, Django) run when ``pip install -r
bench/requirements-peers.txt`` installed them into this interpreter's environment.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
BIN_DIR = Path(sys.executable).parent
FIRST_VERSION = 20200101000000
PEERS = {"yoyo": "yoyo-migrations", "alembic": "alembic", "django": "Django"}


# --- measuring whole processes -------------------------------------------------------------

@dataclass
class Sample:
    wall: float
    peak_mib: float
    code: int


@dataclass
class Contender:
    """One command measured in a scenario; ``prepare`` runs untimed before each run."""

    label: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    prepare: Callable[[], None] | None = None
    check: Callable[[], None] | None = None
    expect_code: int = 0
    samples: list[Sample] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def peak_mib(self) -> float:
        return statistics.median(s.peak_mib for s in self.samples)


class Launcher:
    """The small process that starts measured processes (see launcher.py for why)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(BENCH_DIR / "launcher.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], count: int = 1) -> Sample:
        """Start ``count`` copies together; wall time until the last ends, the largest peak."""
        import marshal

        assert self.process.stdin and self.process.stdout
        request = marshal.dumps((argv, str(cwd), env, count))
        self.process.stdin.write(len(request).to_bytes(4, "big") + request)
        self.process.stdin.flush()
        size = int.from_bytes(self.process.stdout.read(4), "big")
        wall, ended = marshal.loads(self.process.stdout.read(size))
        code = next((c for c, _ in ended if c), 0)
        return Sample(wall, max(kib for _, kib in ended) / 1024, code)

    def close(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        self.process.wait()


LAUNCHER: Launcher | None = None


def run_once(argv: list[str], cwd: Path, env: dict[str, str], count: int = 1) -> Sample:
    global LAUNCHER
    if LAUNCHER is None:
        LAUNCHER = Launcher()
    return LAUNCHER.run(argv, cwd, env, count)


def run_group(contenders: list[Contender], runs: int) -> None:
    """One warm-up each, then ``runs`` interleaved rounds."""
    for contender in contenders:
        _diagnose(contender)
    for _ in range(runs):
        for contender in contenders:
            if contender.prepare:
                contender.prepare()
            sample = run_once(contender.argv, contender.cwd, contender.env)
            if sample.code != contender.expect_code:
                _diagnose(contender)
                raise SystemExit(f"{contender.label}: exit code {sample.code}")
            if contender.check:
                contender.check()
            contender.samples.append(sample)


def _diagnose(contender: Contender) -> None:
    """The warm-up run, with its output kept: a contender that fails says why."""
    if contender.prepare:
        contender.prepare()
    done = subprocess.run(contender.argv, cwd=contender.cwd, env=contender.env,
                          capture_output=True, text=True, check=False)
    if done.returncode != contender.expect_code:
        raise SystemExit(f"{contender.label} ({' '.join(contender.argv)}) exited {done.returncode}:\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    if contender.check:
        contender.check()


def paired_ratio(a: Contender, b: Contender) -> float:
    """Median over rounds of a's wall time divided by b's from the same round."""
    return statistics.median(x.wall / y.wall for x, y in zip(a.samples, b.samples, strict=True))


# --- projects ------------------------------------------------------------------------------

def clean_env(**extra: str) -> dict[str, str]:
    """This environment without settings of the tools measured; byte-code caches are written
    (as on a deployed application), so the warm-up run leaves them for the counted runs."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AFTERPARTY_", "DJANGO_"))
           and k not in ("DATABASE_URL", "PYTHONDONTWRITEBYTECODE")}
    env.update(extra)
    return env


def script(name: str) -> list[str]:
    path = BIN_DIR / name
    if path.exists():
        return [str(path)]
    return [sys.executable, "-m", name]


def write_afterparty_tasks(root: Path, n: int, body: str = "pass") -> Path:
    """Task files dated an hour back, as files checked out before a deploy are: afterparty
    does not trust the size and time of a file written less than two seconds before it ran."""
    tasks = root / "release_tasks"
    tasks.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "app"\n\n[tool.afterparty]\n')
    an_hour_ago = time.time() - 3600
    for i in range(n):
        path = tasks / f"{FIRST_VERSION + i}_task_{i}.py"
        path.write_text(
            "from afterparty import task\n\n\n"
            f'@task(description="bench task {i}")\ndef run(ctx):\n    {body}\n'
        )
        os.utime(path, (an_hour_ago, an_hour_ago))
    return root


def write_yoyo_migrations(root: Path, n: int) -> Path:
    migrations = root / "migrations"
    migrations.mkdir(parents=True)
    for i in range(n):
        (migrations / f"{FIRST_VERSION + i}_m{i}.py").write_text(
            f'"""bench migration {i}"""\nfrom yoyo import step\n\nsteps = [step("SELECT 1")]\n'
        )
    return root


def write_alembic_project(root: Path, n: int, url: str) -> Path:
    versions = root / "alembic" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic.ini").write_text(
        f"[alembic]\nscript_location = %(here)s/alembic\nsqlalchemy.url = {url}\n"
    )
    (root / "alembic" / "env.py").write_text(textwrap.dedent("""\
        from alembic import context
        from sqlalchemy import engine_from_config, pool

        config = context.config
        engine = engine_from_config(config.get_section(config.config_ini_section),
                                    prefix="sqlalchemy.", poolclass=pool.NullPool)
        with engine.connect() as connection:
            context.configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
        """))
    for i in range(n):
        down = f'"r{i - 1:05d}"' if i else "None"
        (versions / f"r{i:05d}_m{i}.py").write_text(
            f'"""bench migration {i}"""\nrevision = "r{i:05d}"\ndown_revision = {down}\n'
            "branch_labels = None\ndepends_on = None\n\n\n"
            "def upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"
        )
    return root


def write_django_project(root: Path, n: int, database: dict[str, str]) -> Path:
    migrations = root / "benchapp" / "migrations"
    migrations.mkdir(parents=True)
    (root / "benchapp" / "__init__.py").write_text("")
    (migrations / "__init__.py").write_text("")
    (root / "benchsettings.py").write_text(
        f'SECRET_KEY = "bench"\nINSTALLED_APPS = ["benchapp"]\nDATABASES = {{"default": {database!r}}}\n'
        'USE_TZ = True\nDEFAULT_AUTO_FIELD = "django.db.models.AutoField"\n'
    )
    (root / "manage.py").write_text(
        "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'benchsettings')\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(sys.argv)\n"
    )
    for i in range(n):
        depends = f'[("benchapp", "{i - 1:05d}_m{i - 1}")]' if i else "[]"
        (migrations / f"{i:05d}_m{i}.py").write_text(
            "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n"
            f"    dependencies = {depends}\n    operations = []\n"
        )
    return root


# --- databases -----------------------------------------------------------------------------

class Databases:
    """Scratch databases: SQLite files in the temporary directory, PostgreSQL ones created
    through the given URL and dropped at the end."""

    def __init__(self, scratch: Path, postgres_url: str | None) -> None:
        self.scratch = scratch
        self.postgres_url = postgres_url
        self.created: list[str] = []

    def sqlite(self, name: str) -> Path:
        return self.scratch / f"{name}.sqlite3"

    def postgres(self, name: str) -> str:
        """A new, empty PostgreSQL database; returns its URL."""
        assert self.postgres_url is not None
        db = f"apbench_{name}_{uuid.uuid4().hex[:8]}"
        self._admin(f"CREATE DATABASE {db}")
        self.created.append(db)
        return self.postgres_url.rsplit("/", 1)[0] + "/" + db

    def drop_all(self) -> None:
        for db in self.created:
            self._admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")

    def _admin(self, sql: str) -> None:
        import psycopg

        assert self.postgres_url is not None
        with psycopg.connect(self.postgres_url, autocommit=True) as conn:
            conn.execute(sql)


def django_database(url: str) -> dict[str, str]:
    if url.startswith("sqlite:///"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": url[len("sqlite:///"):]}
    parts = urlsplit(url)
    return {"ENGINE": "django.db.backends.postgresql", "NAME": parts.path.lstrip("/"),
            "USER": unquote(parts.username or ""), "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "", "PORT": str(parts.port or "")}


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def record_django_applied(url: str, n: int) -> None:
    """Fill django_migrations directly: faking 10,000 migrations one by one takes minutes."""
    rows = [("benchapp", f"{i:05d}_m{i}") for i in range(n)]
    if url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            conn.execute('CREATE TABLE "django_migrations" ("id" integer NOT NULL PRIMARY KEY '
                         'AUTOINCREMENT, "app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, '
                         '"applied" datetime NOT NULL)')
            conn.executemany("INSERT INTO django_migrations (app, name, applied) "
                             "VALUES (?, ?, datetime('now'))", rows)
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE django_migrations (id bigint GENERATED BY DEFAULT AS IDENTITY "
                     "PRIMARY KEY, app varchar(255) NOT NULL, name varchar(255) NOT NULL, "
                     "applied timestamp with time zone NOT NULL)")
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO django_migrations (app, name, applied) "
                               "VALUES (%s, %s, now())", rows)


def peers_installed() -> list[str]:
    import importlib.util

    return [peer for peer in PEERS if importlib.util.find_spec(peer) is not None]


# --- scenarios -----------------------------------------------------------------------------

@dataclass
class Scenario:
    key: str
    title: str
    contenders: list[Contender]
    reference: str  # the label ratios are taken against
    notes: list[str] = field(default_factory=list)

    def get(self, label: str) -> Contender | None:
        return next((c for c in self.contenders if c.label == label), None)


def floors(scratch: Path, postgres_url: str | None) -> list[Contender]:
    env = clean_env()
    found = [
        Contender("floor: python -c pass", [sys.executable, "-c", "pass"], scratch, env),
        Contender("floor: import sqlite3, click", [sys.executable, "-c", "import sqlite3, click"],
                  scratch, env),
        # What the `afterparty` script pip writes imports before afterparty's first line (re),
        # with the driver.
        Contender(SCRIPT_FLOOR, [sys.executable, "-c", "import re, sqlite3"], scratch, env),
        Contender(FLOOR, [sys.executable, "-c", "import sqlite3"], scratch, env),
    ]
    if postgres_url:
        code = (f"import psycopg\nwith psycopg.connect({postgres_url!r}) as c:\n"
                "    c.execute('select 1').fetchall()\n")
        found.append(Contender("floor: psycopg connect, select 1", [sys.executable, "-c", code],
                               scratch, env))
    return found


def noop_scenario(n: int, backend: str, base: Path, dbs: Databases, peers: list[str]) -> Scenario:
    """Every task already recorded: the run that every deploy pays for."""
    root = base / f"noop_{backend}_{n}"
    if backend == "sqlite":
        url = f"sqlite:///{dbs.sqlite(f'afterparty_{backend}_{n}')}"
        floor = floors(base, None)
    else:
        url = dbs.postgres(f"ap{n}")
        floor = floors(base, dbs.postgres_url)[-1:]
    project = write_afterparty_tasks(root / "afterparty", n)
    env = clean_env(AFTERPARTY_DATABASE_URL=url, AFTERPARTY_RELEASE="bench")
    subprocess.run([*script("afterparty"), "mark-done", "--all"], cwd=project, env=env,
                   check=True, capture_output=True)
    contenders = [*floor, must_do_floor(backend, project, url),
                  Contender("afterparty run", [*script("afterparty"), "run"], project, env)]
    contenders += peer_noop_contenders(n, backend, root, dbs, peers)
    reference = floor[-1].label
    return Scenario(f"noop-{backend}-{n}", f"no-op run, {backend}, N = {n:,}", contenders, reference)


def must_do_floor(backend: str, project: Path, url: str) -> Contender:
    """What any no-op run must do, as bare Python: what the `afterparty` script pip writes
    imports (re), the driver, a listing of the tasks directory, and one read of the records."""
    tasks = str(project / "release_tasks")
    query = "SELECT version, state, recurring FROM afterparty_tasks"
    if backend == "sqlite":
        read = (f"import sqlite3\nsqlite3.connect({url[len('sqlite:///'):]!r})"
                f".execute({query!r}).fetchall()\n")
    else:
        read = (f"import psycopg\nwith psycopg.connect({url!r}) as c:\n"
                f"    c.execute({query!r}).fetchall()\n")
    code = f"import os, re\nos.listdir({tasks!r})\n{read}"
    return Contender(MUST_DO, [sys.executable, "-c", code], project, clean_env())


def peer_url(tool: str, backend: str, name: str, dbs: Databases) -> str:
    if backend == "sqlite":
        return f"sqlite:///{dbs.sqlite(f'{tool}_{name}')}"
    return dbs.postgres(f"{tool}{name}")


def peer_noop_contenders(n: int, backend: str, root: Path, dbs: Databases,
                         peers: list[str]) -> list[Contender]:
    found = []
    if "yoyo" in peers:
        url = peer_url("yoyo", backend, str(n), dbs)
        yoyo_url = sqlalchemy_url(url)
        project = write_yoyo_migrations(root / "yoyo", n)
        args = ["--batch", "--no-config-file", "--database", yoyo_url, "migrations"]
        subprocess.run([*script("yoyo"), "mark", *args], cwd=project, env=clean_env(),
                       check=True, capture_output=True)
        found.append(Contender("yoyo apply", [*script("yoyo"), "apply", *args], project, clean_env()))
    if "alembic" in peers:
        url = peer_url("alembic", backend, str(n), dbs)
        project = write_alembic_project(root / "alembic", n, sqlalchemy_url(url))
        subprocess.run([*script("alembic"), "stamp", "head"], cwd=project, env=clean_env(),
                       check=True, capture_output=True)
        found.append(Contender("alembic upgrade head", [*script("alembic"), "upgrade", "head"],
                               project, clean_env()))
    if "django" in peers:
        url = peer_url("django", backend, str(n), dbs)
        project = write_django_project(root / "django", n, django_database(url))
        record_django_applied(url, n)
        found.append(Contender("django migrate", [sys.executable, "manage.py", "migrate", "-v", "0"],
                               project, clean_env()))
    return found


def status_scenario(n: int, base: Path, dbs: Databases) -> Scenario:
    """``status`` beside the no-op ``run`` on the same project."""
    project = write_afterparty_tasks(base / f"status_{n}", n)
    url = f"sqlite:///{dbs.sqlite(f'status_{n}')}"
    env = clean_env(AFTERPARTY_DATABASE_URL=url, AFTERPARTY_RELEASE="bench")
    subprocess.run([*script("afterparty"), "mark-done", "--all"], cwd=project, env=env,
                   check=True, capture_output=True)
    contenders = [
        Contender("afterparty run", [*script("afterparty"), "run"], project, env),
        Contender("afterparty status", [*script("afterparty"), "status"], project, env),
        status_floor(project, url),
    ]
    return Scenario(f"status-sqlite-{n}", f"status, sqlite, N = {n:,}", contenders, "afterparty run")


def status_floor(project: Path, url: str) -> Contender:
    """What any status must do, as bare Python: what the script pip writes imports (re), the
    driver, a listing of the tasks directory, one read of every record, a stat of every task
    file (to tell the ones changed since they ran) and a line printed for each task."""
    code = textwrap.dedent(f"""\
        import os, re, sqlite3, sys
        folder = {str(project / "release_tasks") + os.sep!r}
        names = sorted(name for name in os.listdir(folder) if name.endswith(".py"))
        records = {{row[0]: row for row in sqlite3.connect({url[len("sqlite:///"):]!r}).execute(
            "SELECT version, name, state, finished_at, checksum FROM afterparty_tasks")}}
        lines = []
        for name in names:
            os.stat(folder + name)
            version, task, state, finished, _ = records[name[:14]]
            lines.append(f"{{version}}  {{task}}  {{state}}  {{str(finished)[:19]}}")
        sys.stdout.write("\\n".join(lines) + "\\n")
        """)
    return Contender(STATUS_MUST_DO, [sys.executable, "-c", code], project, clean_env())


def apply_scenario(n: int, base: Path, dbs: Databases, peers: list[str]) -> Scenario:
    """Every task (migration) applied to an empty SQLite database: a fresh one each run."""
    root = base / f"apply_{n}"

    def fresh(path: Path) -> Callable[[], None]:
        def remove() -> None:
            for leftover in path.parent.glob(path.name + "*"):
                leftover.unlink()
        return remove

    ap_db = dbs.sqlite(f"apply_afterparty_{n}")
    project = write_afterparty_tasks(root / "afterparty", n)
    env = clean_env(AFTERPARTY_DATABASE_URL=f"sqlite:///{ap_db}", AFTERPARTY_RELEASE="bench")

    def all_succeeded() -> None:
        import sqlite3

        with sqlite3.connect(ap_db) as conn:
            (done,), = conn.execute("SELECT count(*) FROM afterparty_tasks WHERE state = 'succeeded'")
        if done != n:
            raise SystemExit(f"afterparty applied {done} of {n} tasks")

    contenders = [Contender("afterparty run", [*script("afterparty"), "run"], project, env,
                            prepare=fresh(ap_db), check=all_succeeded)]
    if "yoyo" in peers:
        db = dbs.sqlite(f"apply_yoyo_{n}")
        project = write_yoyo_migrations(root / "yoyo", n)
        contenders.append(Contender(
            "yoyo apply", [*script("yoyo"), "apply", "--batch", "--no-config-file", "--database",
                           f"sqlite:///{db}", "migrations"], project, clean_env(), prepare=fresh(db)))
    if "alembic" in peers:
        db = dbs.sqlite(f"apply_alembic_{n}")
        project = write_alembic_project(root / "alembic", n, f"sqlite:///{db}")
        contenders.append(Contender("alembic upgrade head", [*script("alembic"), "upgrade", "head"],
                                    project, clean_env(), prepare=fresh(db)))
    if "django" in peers:
        db = dbs.sqlite(f"apply_django_{n}")
        project = write_django_project(root / "django", n, django_database(f"sqlite:///{db}"))
        contenders.append(Contender("django migrate", [sys.executable, "manage.py", "migrate", "-v", "0"],
                                    project, clean_env(), prepare=fresh(db)))
    floor_db = dbs.sqlite(f"apply_floor_{n}")
    contenders.append(Contender(APPLY_MUST_DO, [sys.executable, "-c", apply_floor(floor_db)],
                                contenders[0].cwd, clean_env(), prepare=fresh(floor_db)))
    reference = "django migrate" if "django" in peers else "afterparty run"
    return Scenario(f"apply-sqlite-{n}", f"apply {n:,} tasks to an empty sqlite database",
                    contenders, reference)


def apply_floor(database: Path) -> str:
    """What any runner must do to run each task exactly once as afterparty promises, as bare
    Python: for each task file in order, its ``running`` record committed before its body runs
    (synchronous=NORMAL in WAL mode, as afterparty does), the file imported and its body
    called, then its outcome committed to disk (synchronous=FULL: one fsync)."""
    return textwrap.dedent(f"""\
        import importlib.util, os, re, sqlite3, sys
        from datetime import datetime, timezone
        now = lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        db = sqlite3.connect({str(database)!r}, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE tasks (version TEXT PRIMARY KEY, state TEXT, finished_at TEXT)")
        db.execute("CREATE TABLE attempts (id INTEGER PRIMARY KEY, version TEXT, state TEXT, "
                   "started_at TEXT, finished_at TEXT, output TEXT)")
        sys.path.insert(0, os.getcwd())
        for name in sorted(n for n in os.listdir("release_tasks") if n.endswith(".py")):
            version = name[:14]
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO tasks VALUES (?, 'running', NULL)", (version,))
            attempt = db.execute("INSERT INTO attempts (version, state, started_at) "
                                 "VALUES (?, 'running', ?)", (version, now())).lastrowid
            db.execute("COMMIT")
            db.execute("PRAGMA synchronous = FULL")
            spec = importlib.util.spec_from_file_location("task_" + version, "release_tasks/" + name)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            db.execute("BEGIN")
            module.run(None)
            db.execute("UPDATE tasks SET state = 'succeeded', finished_at = ? WHERE version = ?",
                       (now(), version))
            db.execute("UPDATE attempts SET state = 'succeeded', finished_at = ?, output = '' "
                       "WHERE id = ?", (now(), attempt))
            db.execute("COMMIT")
            print(version, "succeeded")
        """)


def concurrency_scenario(n: int, runners: int, base: Path, dbs: Databases, runs: int) -> Scenario:
    """``runners`` runners started together on PostgreSQL against one alone; each round a fresh
    table prefix, and every task appends its version to a file, which must list each once."""
    effects = base / "effects.log"
    project = write_afterparty_tasks(
        base / f"concurrent_{n}", n,
        body=f"open({str(effects)!r}, 'a').write(ctx.version + '\\n')",
    )
    url = dbs.postgres("concurrent")
    argv = [*script("afterparty"), "run", "--wait", "600"]
    groups = {"one runner alone": 1, f"{runners} runners at once": runners}
    floor = Contender(RUNNERS_FLOOR.replace("16", str(runners)),
                      floors(base, url)[-1].argv, base, clean_env())
    samples: dict[str, list[Sample]] = {label: [] for label in [*groups, floor.label]}
    for round_number in range(runs + 1):
        sample = run_once(floor.argv, floor.cwd, floor.env, runners)
        if round_number:
            samples[floor.label].append(sample)
        for label, count in groups.items():
            effects.write_text("")
            env = clean_env(AFTERPARTY_DATABASE_URL=url, AFTERPARTY_RELEASE="bench",
                            AFTERPARTY_TABLE_PREFIX=f"r{round_number}_{count}_")
            sample = run_once(argv, project, env, count)
            ran = effects.read_text().split()
            if sorted(ran) != [str(FIRST_VERSION + i) for i in range(n)] or sample.code:
                raise SystemExit(f"{label}: {len(ran)} task runs for {n} tasks "
                                 f"({len(set(ran))} distinct), exit code {sample.code}")
            if round_number:  # the first round is the warm-up
                samples[label].append(sample)
    contenders = [Contender(label, argv, project, {}, samples=samples[label]) for label in groups]
    contenders.append(Contender(floor.label, floor.argv, base, {}, samples=samples[floor.label]))
    return Scenario(f"concurrent-postgresql-{n}", f"{runners} runners at once vs one alone, "
                    f"postgresql, N = {n}", contenders, "one runner alone",
                    notes=[f"every round: each of the {n} tasks ran exactly once"])


# --- targets and report --------------------------------------------------------------------

@dataclass
class Target:
    scenario: str
    text: str
    measure: Callable[[dict[str, Scenario]], float | None]
    limit: float
    at_most: bool = True
    #: The same figure for bare Python doing only what any tool must (a floor contender).
    floor: Callable[[dict[str, Scenario]], float | None] | None = None

    def verdict(self, scenarios: dict[str, Scenario]) -> tuple[str, str]:
        if self.scenario not in scenarios:
            return "not measured", ""
        value = self.measure(scenarios)
        if value is None:
            return "not measured", "skipped"
        met = value <= self.limit if self.at_most else value >= self.limit
        return f"{value:.2f}", "met" if met else "NOT met"

    def bare(self, scenarios: dict[str, Scenario]) -> str:
        """The floor's figure, where the target has one."""
        value = self.floor(scenarios) if self.floor and self.scenario in scenarios else None
        return "" if value is None else f"{value:.2f}"


def ratio(scenario: str, a: str, b: str) -> Callable[[dict[str, Scenario]], float | None]:
    def measure(scenarios: dict[str, Scenario]) -> float | None:
        first, second = scenarios[scenario].get(a), scenarios[scenario].get(b)
        return paired_ratio(first, second) if first and second else None
    return measure


def peak(scenario: str, label: str) -> Callable[[dict[str, Scenario]], float | None]:
    def measure(scenarios: dict[str, Scenario]) -> float | None:
        found = scenarios[scenario].get(label)
        return found.peak_mib if found else None
    return measure


FLOOR = "floor: import sqlite3"
SCRIPT_FLOOR = "floor: import re, sqlite3 (the script's own)"
PG_FLOOR = "floor: psycopg connect, select 1"
RUNNERS_FLOOR = "floor: 16 x psycopg connect, select 1 at once"
MUST_DO = "floor: what any no-op must do (re, driver, listing, one read)"
STATUS_MUST_DO = "floor: what any status must do (re, driver, listing, one read, a stat a file)"
APPLY_MUST_DO = "floor: what any exactly-once runner must do (a running record, an fsync a task)"
TARGETS = [
    Target("noop-sqlite-1000", "no-op run, sqlite, N=1,000: ÷ floor import sqlite3 ≤ 1.3",
           ratio("noop-sqlite-1000", "afterparty run", FLOOR), 1.3,
           floor=ratio("noop-sqlite-1000", MUST_DO, FLOOR)),
    Target("noop-sqlite-1000", "no-op run, sqlite, N=1,000: yoyo ÷ afterparty ≥ 2",
           ratio("noop-sqlite-1000", "yoyo apply", "afterparty run"), 2.0, at_most=False),
    Target("noop-sqlite-10000", "no-op run, sqlite, N=10,000: ÷ floor import sqlite3 ≤ 1.6",
           ratio("noop-sqlite-10000", "afterparty run", FLOOR), 1.6,
           floor=ratio("noop-sqlite-10000", MUST_DO, FLOOR)),
    Target("noop-sqlite-10000", "no-op run, sqlite, N=10,000: yoyo ÷ afterparty ≥ 6",
           ratio("noop-sqlite-10000", "yoyo apply", "afterparty run"), 6.0, at_most=False),
    Target("noop-sqlite-10000", "no-op run, sqlite, N=10,000: peak memory ≤ 25 MiB",
           peak("noop-sqlite-10000", "afterparty run"), 25.0),
    Target("noop-sqlite-1000", "no-op run, sqlite, N=1,000: ÷ what any no-op must do ≤ 1.3",
           ratio("noop-sqlite-1000", "afterparty run", MUST_DO), 1.3),
    Target("noop-sqlite-10000", "no-op run, sqlite, N=10,000: ÷ what any no-op must do ≤ 1.6",
           ratio("noop-sqlite-10000", "afterparty run", MUST_DO), 1.6),
    Target("noop-postgresql-1000", "no-op run, postgresql, N=1,000: ÷ floor psycopg+select 1 ≤ 1.1",
           ratio("noop-postgresql-1000", "afterparty run", PG_FLOOR), 1.1,
           floor=ratio("noop-postgresql-1000", MUST_DO, PG_FLOOR)),
    Target("status-sqlite-10000", "status ÷ no-op run, N=10,000: ≤ 1.5",
           ratio("status-sqlite-10000", "afterparty status", "afterparty run"), 1.5,
           floor=ratio("status-sqlite-10000", STATUS_MUST_DO, "afterparty run")),
    Target("apply-sqlite-1000", "apply 1,000 tasks: afterparty ÷ django migrate ≤ 0.4",
           ratio("apply-sqlite-1000", "afterparty run", "django migrate"), 0.4,
           floor=ratio("apply-sqlite-1000", APPLY_MUST_DO, "django migrate")),
    Target("concurrent-postgresql-100", "16 runners at once ÷ their floor, N=100: ≤ 1.15",
           ratio("concurrent-postgresql-100", "16 runners at once", RUNNERS_FLOOR), 1.15),
]


def table(scenarios: list[Scenario]) -> list[str]:
    lines = ["| scenario | command | median wall s | peak MiB | ÷ reference | reference |",
             "|---|---|---:|---:|---:|---|"]
    for scenario in scenarios:
        reference = scenario.get(scenario.reference)
        assert reference is not None
        for contender in scenario.contenders:
            versus = paired_ratio(contender, reference)
            lines.append(f"| {scenario.title} | {contender.label} | {contender.wall:.3f} | "
                         f"{contender.peak_mib:.1f} | {versus:.2f}x | {scenario.reference} |")
    return lines


def targets_table(scenarios: dict[str, Scenario]) -> list[str]:
    lines = ["| target | measured | bare Python doing only what it must | verdict |",
             "|---|---:|---:|---|"]
    for target in TARGETS:
        value, verdict = target.verdict(scenarios)
        lines.append(f"| {target.text} | {value} | {target.bare(scenarios)} | {verdict} |")
    return lines


def report(scenarios: list[Scenario], args: argparse.Namespace, peers: list[str]) -> str:
    from importlib.metadata import version

    tools = ", ".join(f"{PEERS[p]} {version(PEERS[p])}" for p in peers) or "none"
    missing = [PEERS[p] for p in PEERS if p not in peers]
    lines = [
        "# afterparty benchmark results",
        "",
        f"Command: `python bench/run.py{' --quick' if args.quick else ''}"
        f"{' --postgres-url URL' if args.postgres_url else ''}` · {args.runs} runs after a warm-up, "
        "contenders interleaved; ratios are medians of round-by-round ratios.",
        "",
        f"Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
        f"afterparty {version('afterparty')}, click {version('click')}; peers: {tools}"
        + (f"; skipped (not installed): {', '.join(missing)}" if missing else ""),
        "",
        f"Load average (1, 5, 15 min) when the run began: {_load(args.load_before)}; "
        f"when it ended: {_load(os.getloadavg())}.",
        "",
        *table(scenarios),
        "",
        *targets_table({s.key: s for s in scenarios}),
    ]
    for scenario in scenarios:
        lines += [f"- {scenario.title}: {note}" for note in scenario.notes]
    return "\n".join(lines) + "\n"


def _load(averages: tuple[float, float, float]) -> str:
    return ", ".join(f"{average:.2f}" for average in averages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small N, SQLite only: checks that the benchmark works (for CI)")
    parser.add_argument("--postgres-url", metavar="URL",
                        help="PostgreSQL server whose user may CREATE DATABASE (scratch databases "
                             "are created and dropped)")
    parser.add_argument("--runs", type=int, default=5, help="counted runs per contender (default 5)")
    parser.add_argument("--output", type=Path, help="where to write the Markdown results "
                        "(default bench/RESULTS.md; with --quick, nowhere)")
    parser.add_argument("--no-peers", action="store_true", help="measure afterparty only")
    parser.add_argument("--only", metavar="TEXT", help="only the scenarios whose key holds TEXT "
                        "(noop-sqlite-1000, status, apply, concurrent, ...)")
    args = parser.parse_args()
    args.load_before = os.getloadavg()
    if args.quick:
        args.postgres_url = None
    peers = [] if args.no_peers else peers_installed()
    if not peers:
        print("peers skipped: pip install -r bench/requirements-peers.txt to compare with "
              + ", ".join(PEERS.values()))
    sizes = [10, 100] if args.quick else [10, 1000, 10000]
    status_n, apply_n = (100, 20) if args.quick else (10000, 1000)
    scratch = Path(tempfile.mkdtemp(prefix="afterparty-bench-"))
    dbs = Databases(scratch, args.postgres_url)
    scenarios: list[Scenario] = []
    try:
        for scenario_of in _planned(sizes, status_n, apply_n, scratch, dbs, peers, args):
            scenario = scenario_of()
            if args.only and args.only not in scenario.key:
                continue
            print(f"measuring: {scenario.title}", flush=True)
            if not scenario.key.startswith("concurrent"):
                run_group(scenario.contenders, args.runs)
            scenarios.append(scenario)
        text = report(scenarios, args, peers)
    finally:
        if LAUNCHER is not None:
            LAUNCHER.close()
        dbs.drop_all()
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(text)
    output = args.output or (None if args.quick else BENCH_DIR / "RESULTS.md")
    if output:
        output.write_text(text)
        print(f"written to {output}")


def _planned(sizes: list[int], status_n: int, apply_n: int, scratch: Path, dbs: Databases,
             peers: list[str], args: argparse.Namespace) -> list[Callable[[], Scenario]]:
    planned: list[Callable[[], Scenario]] = [
        lambda n=n: noop_scenario(n, "sqlite", scratch, dbs, peers) for n in sizes
    ]
    if args.postgres_url:
        planned += [lambda n=n: noop_scenario(n, "postgresql", scratch, dbs, peers) for n in sizes]
    planned.append(lambda: status_scenario(status_n, scratch, dbs))
    planned.append(lambda: apply_scenario(apply_n, scratch, dbs, peers))
    if args.postgres_url:
        planned.append(lambda: concurrency_scenario(100, 16, scratch, dbs, args.runs))
    return planned


if __name__ == "__main__":
    main()
