"""The console of a Django or Flask project reads the records where the framework's commands
keep them: `python manage.py afterparty web`, `flask afterparty web`, and the console mounted
in a Flask app, each served for real."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from examples import Example, copy_example, python
from web_helpers import PASSWORDS, SECRET, csrf, free_port, serving, sign_in, write_users

WELCOME, TELL, LATER = "20261126093000", "20261126094500", "20261127000000"
LATER_TASK = '''
from afterparty import task


@task(description="Tell the warehouse")
def run(ctx):
    pass
'''


def with_console_users(example: Example) -> Example:
    example.env.update(AFTERPARTY_WEB_HTPASSWD=str(write_users(example.root / "users.htpasswd")),
                       AFTERPARTY_WEB_SECRET=SECRET)
    return example


@pytest.fixture(params=["sqlite", "postgresql"])
def django_site(request: pytest.FixtureRequest, tmp_path: Path) -> Example:
    url = None if request.param == "sqlite" else str(request.getfixturevalue("postgresql_url"))
    root, env = copy_example("django_site", tmp_path, url)
    site = Example(root, url or f"sqlite:///{root / 'db.sqlite3'}", env, [python(), "manage.py"])
    assert site.run("migrate", "--verbosity", "0").code == 0
    return with_console_users(site)


@pytest.fixture(params=["sqlite", "postgresql"])
def flask_app(request: pytest.FixtureRequest, tmp_path: Path) -> Example:
    url = None if request.param == "sqlite" else str(request.getfixturevalue("postgresql_url"))
    root, env = copy_example("flask_app", tmp_path,
                             url.replace("postgresql://", "postgresql+psycopg://", 1) if url else None)
    env["FLASK_APP"] = "shop"
    app = Example(root, url or f"sqlite:///{root / 'instance' / 'shop.sqlite3'}", env,
                  [python(), "-m", "flask"])
    assert app.run("init-db").code == 0
    return with_console_users(app)


def run_then_add_a_task(example: Example) -> None:
    """Both tasks of the example run by the framework's command; one more task left pending."""
    ran = example.run("afterparty", "run")
    assert ran.code == 0, ran.both
    (example.root / "release_tasks" / f"{LATER}_tell_warehouse.py").write_text(LATER_TASK)


def assert_console_reads_and_writes_the_frameworks_records(example: Example, base: str,
                                                           database: str) -> None:
    """What `status` says, the console says; a decision taken there lands in those records."""
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as browser:
        api = browser.get("/api/v1/status", auth=("alice", PASSWORDS["alice"])).json()
        (environment,) = api["environments"]
        assert environment["database"].startswith(database), environment
        assert [(t["version"], t["state"]) for t in environment["tasks"]] == [
            (WELCOME, "succeeded"), (TELL, "succeeded"), (LATER, "pending")]
        sign_in(browser)
        overview = browser.get("/").text
        assert "No records yet" not in overview and "<b>2</b> succeeded" in overview
        page = browser.get(f"/env/development/tasks/{LATER}")
        skipped = browser.post(f"/env/development/tasks/{LATER}/skip", data={
            "csrf_token": csrf(page.text), "expected": "pending", "note": "not needed"})
        assert skipped.status_code == 303, skipped.text
    assert example.query(f"SELECT state FROM afterparty_tasks WHERE version = '{LATER}'") == [
        ("skipped",)]


def test_manage_py_afterparty_web_shows_djangos_database(django_site: Example, tmp_path: Path) -> None:
    run_then_add_a_task(django_site)
    port = free_port()
    with serving([*django_site.command, "afterparty", "web", "--port", str(port)], django_site.root,
                 django_site.env, f"http://127.0.0.1:{port}", tmp_path / "web.log") as base:
        assert_console_reads_and_writes_the_frameworks_records(django_site, base, "django:default")


def test_flask_afterparty_web_shows_the_apps_database(flask_app: Example, tmp_path: Path) -> None:
    run_then_add_a_task(flask_app)
    port = free_port()
    with serving([*flask_app.command, "afterparty", "web", "--port", str(port)], flask_app.root,
                 flask_app.env, f"http://127.0.0.1:{port}", tmp_path / "web.log") as base:
        database = "postgresql" if "postgresql" in flask_app.database_url else "sqlite"
        assert_console_reads_and_writes_the_frameworks_records(flask_app, base, database)


MOUNTED = '''
from a2wsgi import ASGIMiddleware
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from afterparty.contrib.flask import console_app
from shop import create_app

app = create_app()
app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/afterparty": ASGIMiddleware(console_app(app))})
'''


def test_the_console_mounted_in_a_flask_app_shows_the_apps_database(flask_app: Example,
                                                                   tmp_path: Path) -> None:
    """The manual's mounting, served by `flask run`."""
    run_then_add_a_task(flask_app)
    (flask_app.root / "mounted.py").write_text(MOUNTED)
    port = free_port()
    with serving([*flask_app.command, "--app", "mounted", "run", "--port", str(port)],
                 flask_app.root, flask_app.env, f"http://127.0.0.1:{port}/afterparty",
                 tmp_path / "web.log") as base:
        database = "postgresql" if "postgresql" in flask_app.database_url else "sqlite"
        assert_console_reads_and_writes_the_frameworks_records(flask_app, base, database)


@pytest.mark.parametrize("django_site", ["postgresql"], indirect=True)
def test_manage_py_afterparty_web_outlives_a_database_restart(django_site: Example,
                                                              tmp_path: Path) -> None:
    """The server ends every session (a restart, a failover): the next page reads the records
    on a new connection, as a Django request would, instead of the broken one."""
    run_then_add_a_task(django_site)
    database = django_site.database_url.rsplit("/", 1)[1]
    port = free_port()
    with serving([*django_site.command, "afterparty", "web", "--port", str(port)], django_site.root,
                 django_site.env, f"http://127.0.0.1:{port}", tmp_path / "web.log") as base, \
            httpx.Client(base_url=base, timeout=30, auth=("alice", PASSWORDS["alice"])) as api:
        assert "error" not in api.get("/api/v1/status").json()["environments"][0]
        ended = django_site.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  f"WHERE datname = '{database}' AND pid <> pg_backend_pid()")
        assert ended and all(row == (True,) for row in ended)
        for _ in range(3):
            environment = api.get("/api/v1/status").json()["environments"][0]
            assert "error" not in environment, environment
            assert len(environment["tasks"]) == 3
