"""examples/django_site end to end: `python manage.py afterparty ...` on Django's database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from examples import Example, copy_example, python

WELCOME, TELL = "20261126093000", "20261126094500"
ORM = "from django.db.models import F\nfrom shop.models import Customer"


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Example:
    """The example Django site, migrated, on SQLite or on a fresh PostgreSQL database."""
    url = None if request.param == "sqlite" else str(request.getfixturevalue("postgresql_url"))
    root, env = copy_example("django_site", tmp_path, url)
    example = Example(root, url or f"sqlite:///{root / 'db.sqlite3'}", env, [python(), "manage.py"])
    migrated = example.run("migrate", "--verbosity", "0")
    assert migrated.code == 0, migrated.both
    return example


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Example:
    root, env = copy_example("django_site", tmp_path, None)
    example = Example(root, f"sqlite:///{root / 'db.sqlite3'}", env, [python(), "manage.py"])
    assert example.run("migrate", "--verbosity", "0").code == 0
    return example


def test_manage_py_afterparty_runs_each_task_exactly_once(site: Example) -> None:
    first = site.run("afterparty", "run")
    assert first.code == 0, first.both
    assert f"{WELCOME} welcome_points succeeded" in first.out
    assert f"{TELL} tell_the_team succeeded" in first.out
    assert "notification (no notify URL configured): Loyalty points are live" in first.out
    assert site.points() == {"ada": 100, "grace": 100}

    again = site.run("afterparty", "run")
    assert again.code == 0, again.both
    assert "no pending tasks" in again.out
    assert site.points() == {"ada": 100, "grace": 100}
    # The records live in Django's own database, next to the shop's tables.
    assert site.query("SELECT version, state, attempts FROM afterparty_tasks ORDER BY version") == [
        (WELCOME, "succeeded", 1), (TELL, "succeeded", 1)]


def test_a_raising_task_leaves_no_orm_change_behind(site: Example) -> None:
    site.write_task("20261127000000_breaks.py", ORM, """
        Customer.objects.update(loyalty_points=F("loyalty_points") + 1)
        Customer.objects.create(name="linus")
        raise RuntimeError("the partner API said no")
    """)
    result = site.run("afterparty", "run")
    assert result.code == 1, result.both
    assert "breaks failed" in result.out and "the partner API said no" in result.out
    assert site.points() == {"ada": 100, "grace": 100}  # the first task's work, not the third's
    assert site.query("SELECT state FROM afterparty_tasks WHERE version = '20261127000000'") == [("failed",)]

    retry = site.run("afterparty", "run")
    assert retry.code == 1
    assert site.points() == {"ada": 100, "grace": 100}


def test_deploys_started_together_run_each_task_once(site: Example) -> None:
    site.write_task("20261127000000_slow.py", f"import time\n{ORM}", """
        Customer.objects.update(loyalty_points=F("loyalty_points") + 1)
        time.sleep(1)
    """)
    runners = [site.popen("afterparty", "run", "--wait", "120") for _ in range(4)]
    results = [(r.wait(timeout=300), r.stdout.read(), r.stderr.read()) for r in runners]  # type: ignore[union-attr]
    assert all(code == 0 for code, _, _ in results), results
    assert site.points() == {"ada": 101, "grace": 101}
    attempts = site.query("SELECT version, COUNT(*) FROM afterparty_attempts GROUP BY version")
    assert sorted(attempts) == [(WELCOME, 1), (TELL, 1), ("20261127000000", 1)]


def test_every_command_works_through_manage_py(sqlite_site: Example) -> None:
    site = sqlite_site
    assert site.run("afterparty", "check").code == 0
    dry = site.run("afterparty", "run", "--dry-run")
    assert f"would run {WELCOME} welcome_points" in dry.out
    assert site.run("afterparty", "mark-done", "tell_the_team").code == 0
    ran = json.loads(site.run("afterparty", "run", "--json").out)
    assert [t["name"] for t in ran["tasks"]] == ["welcome_points"]

    shown = json.loads(site.run("afterparty", "show", "welcome_points", "--json").out)
    assert "gave 100 points to 2 customers" in shown["attempts"][0]["output"]
    assert site.run("afterparty", "forget", "welcome_points").code == 0
    assert site.run("afterparty", "run").code == 0
    assert site.points() == {"ada": 200, "grace": 200}  # forgotten, so it ran again

    help_text = site.run("afterparty", "--help")
    assert help_text.code == 0 and "Usage: manage.py afterparty" in help_text.out
    refused = site.run("afterparty", "--database-url", "sqlite:///other.db", "status")
    assert refused.code == 2
    assert "AFTERPARTY['DATABASE']" in refused.err


def test_the_afterparty_setting_maps_onto_the_configuration(sqlite_site: Example) -> None:
    site = sqlite_site
    (site.root / "release_tasks").rename(site.root / "jobs")
    with open(site.root / "shop_site" / "settings.py", "a") as fh:
        fh.write('\nAFTERPARTY = {"TASKS_DIR": "jobs", "ENVIRONMENT": "staging", '
                 '"TABLE_PREFIX": "deploy_"}\n')
    status = json.loads(site.run("afterparty", "status", "--json").out)
    assert status["environment"] == "staging"
    assert status["database"].startswith("django:default (sqlite ")
    assert status["tasks"][0]["path"].startswith(str(site.root / "jobs"))
    assert site.run("afterparty", "run").code == 0
    assert site.query("SELECT COUNT(*) FROM deploy_tasks") == [(2,)]

    site.env["AFTERPARTY_ENV"] = "production"  # environment variables win over settings
    assert json.loads(site.run("afterparty", "status", "--json").out)["environment"] == "production"

    with open(site.root / "shop_site" / "settings.py", "a") as fh:
        fh.write('\nAFTERPARTY = {"TASK_DIR": "jobs"}\n')
    typo = site.run("afterparty", "status")
    assert typo.code == 2
    assert "unknown key 'TASK_DIR' in the AFTERPARTY setting" in typo.err


ADMIN_CHECK = """
from django.contrib.auth.models import User
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()
User.objects.create_superuser("admin", "admin@example.com", "pw")
client = Client()
client.login(username="admin", password="pw")
listing = client.get("/admin/afterparty/task/")
print("list", listing.status_code, "welcome_points" in listing.text, "succeeded" in listing.text)
detail = client.get("/admin/afterparty/task/20261126093000/change/")
print("detail", detail.status_code, "gave 100 points to 2 customers" in detail.text,
      'name="_save"' in detail.text)
print("post", client.post("/admin/afterparty/task/20261126093000/change/", {"state": "pending"}).status_code)
print("add", client.get("/admin/afterparty/task/add/").status_code)
print("attempts", client.get("/admin/afterparty/attempt/").status_code)
"""


def test_the_admin_shows_tasks_and_attempts_read_only(sqlite_site: Example) -> None:
    site = sqlite_site
    assert site.run("afterparty", "run").code == 0
    result = site.run("shell", "-c", ADMIN_CHECK)
    assert result.code == 0, result.both
    lines = dict(line.split(" ", 1) for line in result.out.splitlines() if " " in line)
    assert lines["list"] == "200 True True"
    assert lines["detail"] == "200 True False"  # the output is shown; there is no save button
    assert lines["post"] == "403"
    assert lines["add"] == "403"
    assert lines["attempts"] == "200"
    assert site.query(f"SELECT state FROM afterparty_tasks WHERE version = '{WELCOME}'") == [("succeeded",)]
