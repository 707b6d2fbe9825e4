"""Settings from command-line flags, environment variables and pyproject.toml, in that order."""

from __future__ import annotations

import os
import re
import sys

from afterparty.errors import ConfigError

DEFAULTS = {
    "database_url": "sqlite:///afterparty.sqlite3",
    "tasks_dir": "release_tasks",
    "environment": "development",
    "table_prefix": "afterparty_",
}
ENV_VARS = {
    "database_url": ("AFTERPARTY_DATABASE_URL", "DATABASE_URL"),
    "tasks_dir": ("AFTERPARTY_TASKS_DIR",),
    "environment": ("AFTERPARTY_ENV",),
    "table_prefix": ("AFTERPARTY_TABLE_PREFIX",),
    "release": ("AFTERPARTY_RELEASE",),
    "notify": ("AFTERPARTY_NOTIFY",),
    "notify_summary": ("AFTERPARTY_NOTIFY_SUMMARY",),
    "celery_app": ("AFTERPARTY_CELERY_APP",),
}
KNOWN_KEYS = frozenset(ENV_VARS)
# Names -> notification URLs, for a task's owner and escalate_to (and [tool.afterparty.notify.owners]).
OWNERS_VARIABLE = "AFTERPARTY_NOTIFY_OWNERS"
# Tables inside [tool.afterparty] that their own code reads (web: the console, afterparty.web).
KNOWN_TABLES = frozenset({"web"})
# Variables that platforms and CI services set to the commit or release being deployed.
RELEASE_VARS = (
    "HEROKU_SLUG_COMMIT", "HEROKU_RELEASE_VERSION", "GITHUB_SHA", "CI_COMMIT_SHA",
    "RENDER_GIT_COMMIT", "FLY_IMAGE_REF", "SOURCE_VERSION",
)
_PREFIX = re.compile(r"[A-Za-z0-9_]{0,40}")
# Environment names and release ids are kept in VARCHAR(255) columns on every database.
NAME_LIMIT = 255


class Settings:
    """Everything a command needs to know about where tasks and records live. (Not a
    dataclass: the settings are read on the no-op path, and dataclasses costs it more than
    reading them.)"""

    def __init__(self, database_url: str, tasks_dir: str, environment: str, table_prefix: str,
                 project_root: str, release: str | None = None, notify: list[str] | None = None,
                 notify_summary: bool = False, pyproject: str | None = None,
                 database_url_source: str | None = None, program: str = "afterparty",
                 command: str = "afterparty", celery_app: str | None = None,
                 notify_owners: dict[str, list[str]] | None = None) -> None:
        self.database_url = database_url
        self.tasks_dir = tasks_dir
        self.environment = environment
        self.table_prefix = table_prefix
        self.project_root = project_root
        self.release = release
        self.notify: list[str] = [] if notify is None else notify
        self.notify_summary = notify_summary
        self.pyproject = pyproject
        #: Where database_url came from, for messages about it.
        self.database_url_source = database_url_source
        #: The command the user runs (``python manage.py afterparty``, ``flask --app shop
        #: afterparty``), as a task file names it: the same in every environment.
        self.program = program
        #: The program with the global options the user gave that choose the records
        #: (``--env``, ``--database-url`` with its password hidden, ...), for every hint that
        #: tells them what to run next: pasted, it acts on the same environment.
        self.command = command
        #: ``module:attribute`` of the Celery app that runs ``@task(background=True)`` tasks.
        self.celery_app = celery_app
        #: A name a task gives as ``owner`` or ``escalate_to`` -> its notification URLs
        #: (``[tool.afterparty.notify.owners]``); a name not here is told through ``notify``.
        self.notify_owners: dict[str, list[str]] = {} if notify_owners is None else notify_owners

    def replace(self, **changes: object) -> Settings:
        """A copy with ``changes`` (another environment's settings, a worker's tasks folder)."""
        copy = Settings.__new__(Settings)
        copy.__dict__.update(self.__dict__, **changes)
        return copy

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={value!r}" for key, value in self.__dict__.items()
                          if key != "database_url")
        return f"Settings({shown})"


def find_pyproject(start: str) -> str | None:
    """The nearest pyproject.toml, walking up from ``start``."""
    directory = os.path.abspath(start)
    while True:
        candidate = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def read_pyproject_table(path: str, quick: bool = False) -> dict[str, object]:
    """The ``[tool.afterparty]`` table of a pyproject.toml; ConfigError if it is not TOML.
    ``quick``: a plain table is read without a TOML parser (afterparty.pyproject), and the
    rest of the file is not checked."""
    try:
        with open(path, "rb") as fh:
            content = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    plain = None
    if quick:
        from afterparty.pyproject import plain_table

        plain = plain_table(content)
    table = _parsed_table(path, content) if plain is None else plain
    unknown = sorted(set(table) - KNOWN_KEYS - KNOWN_TABLES)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r} in [tool.afterparty]; "
            f"known keys: {', '.join(sorted(KNOWN_KEYS | KNOWN_TABLES))}"
        )
    return table


def _parsed_table(path: str, content: bytes) -> dict[str, object]:
    """The table as tomllib reads it; ConfigError if the file is not TOML."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        document = tomllib.loads(content.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}): fix the file and try again") from None
    table = document.get("tool", {}).get("afterparty", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.afterparty] must be a table")
    return table


def load_settings(flags: dict[str, str | None] | None = None, cwd: str | None = None,
                  app_settings: dict[str, object] | None = None,
                  app_base: str | None = None, quick: bool = False) -> Settings:
    """Merge flags > environment variables > app settings > pyproject.toml > defaults.

    ``app_settings`` are a web framework's (Django's ``AFTERPARTY``, Flask's ``app.config``),
    by the keys of ``[tool.afterparty]``; relative paths in them are relative to ``app_base``.
    ``quick`` (the no-op look): a plain ``[tool.afterparty]`` is read without a TOML parser,
    and the rest of pyproject.toml is not checked.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    app_settings = app_settings or {}
    cwd = os.path.abspath(cwd or os.getcwd())
    pyproject = find_pyproject(cwd)
    table = read_pyproject_table(pyproject, quick) if pyproject else {}
    project_root = os.path.dirname(pyproject) if pyproject else cwd

    def pick(key: str) -> tuple[object | None, str, str]:
        """The value for a key, the directory relative paths in it are taken from, and where
        it came from."""
        if key in flags:
            return flags[key], cwd, f"--{key.replace('_', '-')}"
        for var in ENV_VARS[key]:
            if os.environ.get(var):
                return os.environ[var], cwd, var
        if key in app_settings:
            return app_settings[key], app_base or cwd, "the application's settings"
        if key in table:
            return table[key], project_root, f"[tool.afterparty] in {pyproject}"
        return DEFAULTS.get(key), project_root, "the default"

    values = {key: pick(key) for key in KNOWN_KEYS}
    notify_urls, owners = _notify_table(values["notify"])
    for key, (value, _, _) in values.items():
        if value is not None and key not in ("notify", "notify_summary") and not isinstance(value, str):
            raise ConfigError(f"setting {key!r} must be a string, not {value!r}")
    database_url, url_base, url_source = values["database_url"]
    tasks_dir, tasks_base, _ = values["tasks_dir"]
    prefix = str(values["table_prefix"][0])
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"table prefix {prefix!r} may hold only letters, digits and _ (at most 40)"
        )
    for key in ("environment", "release"):
        value, _, source = values[key]
        if value is not None and len(str(value)) > NAME_LIMIT:
            raise ConfigError(f"the {key} from {source} is {len(str(value))} characters long: "
                              f"records keep at most {NAME_LIMIT}; use a shorter one")
    if not str(values["environment"][0]).strip():
        raise ConfigError(f"the environment name from {values['environment'][2]} is empty: "
                          "name it, as in --env production")
    return Settings(
        database_url=anchor_sqlite_path(str(database_url), url_base),
        tasks_dir=os.path.join(tasks_base, str(tasks_dir)),
        environment=str(values["environment"][0]),
        table_prefix=prefix,
        project_root=project_root,
        release=_str_or_none(values["release"][0]),
        notify=notify_urls,
        notify_owners=owners,
        notify_summary=_as_bool("notify_summary", values["notify_summary"][0]),
        pyproject=pyproject,
        database_url_source=url_source,
        celery_app=_str_or_none(values["celery_app"][0]),
    )


def anchor_sqlite_path(url: str, base: str) -> str:
    """Make a relative SQLite path relative to where the setting came from."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        path = url[len(prefix):]
        if path and not path.startswith(":"):
            return prefix + os.path.join(base, path)
    return url


def _as_bool(key: str, value: object) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"setting {key!r} must be true or false, not {value!r}")


def _str_or_none(value: object) -> str | None:
    return str(value) if value else None


def _split_urls(value: object) -> list[str]:
    if not value:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _notify_table(notify: tuple[object | None, str, str]) -> tuple[list[str], dict[str, list[str]]]:
    """The ``notify`` setting: URLs (a list, or text with commas), or a table with ``urls`` and
    ``owners`` (``[tool.afterparty.notify.owners]``: a name -> its URLs). Owners given by
    ``AFTERPARTY_NOTIFY_OWNERS`` (``ops=slack://...;oncall=mailto://...``) replace the table's."""
    value, _, source = notify
    owners: object = {}
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"urls", "owners"})
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} in the notify table from {source}; "
                              "known keys: owners, urls")
        owners = value.get("owners", {})
        value = value.get("urls")
    named = os.environ.get(OWNERS_VARIABLE)
    if named:
        owners = dict(item.split("=", 1) for item in named.split(";") if "=" in item)
    if not isinstance(owners, dict):
        raise ConfigError(f"the notify owners from {source} must be a table of names and URLs")
    return _split_urls(value), {str(name).strip(): _split_urls(urls) for name, urls in owners.items()}


def detect_release(settings: Settings) -> str | None:
    """The release being deployed: the setting, a platform's variable, else git's HEAD."""
    if settings.release:
        return settings.release
    for var in RELEASE_VARS:
        if os.environ.get(var):
            return os.environ[var]
    head = _git_head(settings.project_root)
    if head is not None:  # "" is no repository at all: no git process asked
        return head or None
    import subprocess

    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=settings.project_root, capture_output=True,
            text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _git_head(root: str) -> str | None:
    """The commit of HEAD read from the repository's files, without a git process (every run
    asks, the no-op run too); "" when ``root`` is in no repository; None when the files do not
    say it plainly (git is asked then)."""
    if os.environ.get("GIT_DIR"):
        return None
    directory = os.path.abspath(root)
    while not os.path.exists(os.path.join(directory, ".git")):
        parent = os.path.dirname(directory)
        if parent == directory:
            return ""
        directory = parent
    try:
        git_dir = os.path.join(directory, ".git")
        if os.path.isfile(git_dir):  # a worktree or a submodule: "gitdir: <path>"
            pointer = _read_text(git_dir)
            if not pointer.startswith("gitdir: "):
                return None
            git_dir = os.path.join(directory, pointer[len("gitdir: "):])
        common = git_dir
        if os.path.isfile(os.path.join(git_dir, "commondir")):
            common = os.path.join(git_dir, _read_text(os.path.join(git_dir, "commondir")))
        head = _read_text(os.path.join(git_dir, "HEAD"))
        if not head.startswith("ref: "):
            return head if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", head) else None
        ref = head[len("ref: "):]
        for where in (git_dir, common):
            if os.path.isfile(os.path.join(where, ref)):
                return _read_text(os.path.join(where, ref)) or None
        for line in _read_text(os.path.join(common, "packed-refs")).splitlines():
            commit, _, name = line.partition(" ")
            if name == ref:
                return commit
    except OSError:
        return None
    return None


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read().strip()
