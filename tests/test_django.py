"""examples/django_site end to end: `python manage.py afterparty ...` on Django's database."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import subprocess
import textwrap
from pathlib import Path

import pytest

from afterparty.records import SCHEMA_VERSION
from examples import Example, copy_example, python

WELCOME, TELL = "20261126093000", "20261126094500"
ORM = "from django.db.models import F\nfrom shop.models import Customer"


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Example:
    """The example Django site, migrated, on SQLite or on a fresh PostgreSQL or MariaDB database
    (Django's MySQL backend over PyMySQL, as the example's settings set it up)."""
    url = None if request.param == "sqlite" else str(request.getfixturevalue(f"{request.param}_url"))
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
    assert "notice held until the task succeeds: Loyalty points are live" in first.out
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


def add_settings(site: Example, text: str) -> None:
    with open(site.root / "shop_site" / "settings.py", "a") as fh:
        fh.write("\n" + textwrap.dedent(text))


def test_django_standard_options_are_accepted(sqlite_site: Example) -> None:
    """What Django users type on any management command works on this one too."""
    site = sqlite_site
    ran = site.run("afterparty", "run", "--settings", "shop_site.settings", "--pythonpath", ".",
                   "--no-color", "-v", "2", "--traceback")
    assert ran.code == 0, ran.both
    assert f"{WELCOME} welcome_points succeeded" in ran.out
    assert "\\x1b[" not in ran.out
    for options in (["--verbosity=0"], ["-v0"], ["--settings=shop_site.settings"], ["-v", "3"]):
        status = site.run("afterparty", "status", *options)
        assert status.code == 0, (options, status.both)
        assert "welcome_points" in status.out
    # A bare -v is still afterparty's --verbose (tracebacks), not a verbosity missing its level.
    assert site.run("afterparty", "-v", "status").code == 0
    level = site.run("afterparty", "status", "--verbosity", "5")
    assert level.code == 2 and level.err.strip().splitlines() == [
        "manage.py afterparty: error: --verbosity takes 0, 1, 2 or 3, not '5'"]
    wrong = site.run("afterparty", "status", "--settings", "no_such.settings")
    assert wrong.code != 0 and "no_such" in wrong.err

    helped = site.run("help", "afterparty")
    assert helped.code == 0, helped.both
    for option in ("--settings", "--pythonpath", "--traceback", "--no-color", "--verbosity",
                   "Usage: manage.py afterparty", "mark-done", "--database-url"):
        assert option in helped.out, option
    for missing in ("--force-color", "--skip-checks"):  # options that would be refused
        assert missing not in helped.out, missing
    assert site.run("afterparty", "--help").out == helped.out


CALL_COMMAND = """
import io
from django.core.management import CommandError, call_command

out, err = io.StringIO(), io.StringIO()
call_command("afterparty", "run", stdout=out, stderr=err)
print("RUN", repr(out.getvalue()))
out = io.StringIO()
call_command("afterparty", "status", "--json", stdout=out)
print("STATUS", repr(out.getvalue()))
try:
    call_command("afterparty", "show", "no_such_task", stdout=out, stderr=err)
except CommandError as exc:
    print("ERROR", exc.returncode, repr(err.getvalue()))
"""


def test_call_command_writes_into_the_streams_it_is_given(sqlite_site: Example) -> None:
    """call_command(..., stdout=buf) is how Django code and tests read a command's output."""
    result = sqlite_site.run("shell", "-c", CALL_COMMAND)
    assert result.code == 0, result.both
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in result.out.splitlines()
             if line.split(" ", 1)[0] in ("RUN", "STATUS", "ERROR")}
    assert f"{WELCOME} welcome_points succeeded" in lines["RUN"]
    assert '"state": "succeeded"' in lines["STATUS"]
    code, err = lines["ERROR"].split(" ", 1)
    assert code == "2" and "no_such_task" in err
    assert "python manage.py afterparty status" in err  # the hint names the Django command
    # Nothing leaked to the process's own stdout besides what the script printed.
    assert "welcome_points succeeded" not in result.out.replace(lines["RUN"], "")


def test_migrations_are_in_step_with_the_models(sqlite_site: Example) -> None:
    checked = sqlite_site.run("makemigrations", "--check", "--dry-run")
    assert checked.code == 0, checked.both
    shown = sqlite_site.run("showmigrations", "afterparty")
    assert "[X] 0001_initial" in shown.out


def test_migrate_and_the_first_run_in_either_order(site: Example, tmp_path: Path) -> None:
    """The migration creates afterparty's tables as afterparty does: migrate first (the fixture
    did), then run; and on a database where runs came first, migrate, then run again."""
    assert site.query("SELECT COUNT(*) FROM afterparty_tasks") == [(0,)]  # before any run
    first = site.run("afterparty", "run")
    assert first.code == 0, first.both
    dumped = site.run("dumpdata", "afterparty", "--indent", "0")
    assert dumped.code == 0, dumped.both
    assert {(row["model"], row["fields"].get("state")) for row in json.loads(dumped.out)} >= {
        ("afterparty.task", "succeeded"), ("afterparty.attempt", "succeeded")}

    # The other order: the app's tables gone (migrate afterparty zero drops them, history and
    # all), afterparty creates its own on its next run, and then Django migrates the app.
    assert site.run("migrate", "afterparty", "zero", "-v", "0").code == 0
    rerun = site.run("afterparty", "run")
    assert rerun.code == 0, rerun.both
    assert site.points() == {"ada": 200, "grace": 200}  # no records left: both ran again
    migrated = site.run("migrate", "-v", "0")
    assert migrated.code == 0, migrated.both
    assert "[X] 0001_initial" in site.run("showmigrations", "afterparty").out
    site.write_task("20261127000000_later.py", "", "ctx.log.info('later')")
    again = site.run("afterparty", "run")
    assert again.code == 0, again.both
    assert "later succeeded" in again.out and "welcome_points" not in again.out
    assert site.query("SELECT version, attempts FROM afterparty_tasks ORDER BY version") == [
        (WELCOME, 1), (TELL, 1), ("20261127000000", 1)]
    assert site.query("SELECT meta_value FROM afterparty_meta WHERE meta_key = 'schema'") == [
        (str(SCHEMA_VERSION),)]


def test_the_admin_smoke_test_runs_in_a_django_test_database(site: Example) -> None:
    """`manage.py test`: the test database gets the records tables from the migration, and
    the admin lists work on it before anything ran."""
    tested = site.run("test", "shop", "-v", "2", timeout=300)
    assert tested.code == 0, tested.both
    assert "Ran 2 tests" in tested.err and "OK" in tested.err


OPS_DATABASE = """
DATABASES["ops"] = {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "ops.sqlite3"}
"""


@pytest.mark.parametrize("how", ["router", "setting"])
def test_records_on_another_database_alias(sqlite_site: Example, how: str) -> None:
    """Records kept in an `ops` database: by DATABASE_ROUTERS or by AFTERPARTY["DATABASE"];
    the command line writes there and the admin reads there, tests included."""
    site = sqlite_site
    add_settings(site, OPS_DATABASE + (
        'DATABASE_ROUTERS = ["shop_site.routers.OpsRouter"]\n' if how == "router"
        else 'AFTERPARTY["DATABASE"] = "ops"\n'))
    if how == "router":  # the default database as it is migrated with the router in place
        (site.root / "db.sqlite3").unlink()
        assert site.run("migrate", "-v", "0").code == 0
    assert site.run("migrate", "--database", "ops", "-v", "0").code == 0
    ops = Example(site.root, f"sqlite:///{site.root / 'ops.sqlite3'}", site.env, site.command)
    assert ops.query("SELECT COUNT(*) FROM afterparty_tasks") == [(0,)]

    ran = site.run("afterparty", "run")
    assert ran.code == 0, ran.both
    assert ops.query("SELECT version, state FROM afterparty_tasks ORDER BY version") == [
        (WELCOME, "succeeded"), (TELL, "succeeded")]
    if how == "router":  # the router keeps the records tables out of the default database
        assert site.query("SELECT name FROM sqlite_master WHERE name LIKE 'afterparty%'") == []
    else:
        assert site.query("SELECT COUNT(*) FROM afterparty_tasks") == [(0,)]

    admin = site.run("shell", "-c", ADMIN_CHECK)
    assert admin.code == 0, admin.both
    assert "list 200 True True" in admin.out and "detail 200 True False" in admin.out
    tested = site.run("test", "shop", timeout=300)
    assert tested.code == 0, tested.both


def test_the_tasks_directory_is_found_from_any_working_directory(sqlite_site: Example,
                                                                 tmp_path: Path) -> None:
    """`python /srv/shop/manage.py afterparty run` from / (cron, a deploy tool) finds the
    project's tasks: relative to BASE_DIR, not to the shell's directory."""
    site = sqlite_site
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for settings in ("", 'AFTERPARTY = {"TASKS_DIR": "release_tasks"}\n', "AFTERPARTY = {}\n"):
        add_settings(site, settings)
        done = subprocess.run([python(), str(site.root / "manage.py"), "afterparty", "status", "--json"],
                              cwd=elsewhere, env=site.env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, (settings, done.stderr)
        paths = [task["path"] for task in json.loads(done.stdout)["tasks"]]
        assert len(paths) == 2 and all(p.startswith(str(site.root / "release_tasks")) for p in paths)
    ran = subprocess.run([python(), str(site.root / "manage.py"), "afterparty", "run"], cwd=elsewhere,
                         env=site.env, capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    assert site.points() == {"ada": 100, "grace": 100}
    assert not (elsewhere / "release_tasks").exists()


def run_in_pty(site: Example, *args: str) -> bytes:
    """``manage.py`` at a terminal, as a person types it; what the terminal shows."""
    primary, secondary = pty.openpty()
    env = {k: v for k, v in site.env.items() if k != "NO_COLOR"}
    try:
        try:
            done = subprocess.run([*site.command, *args], cwd=site.root, env=env,
                                  stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary,
                                  timeout=120, check=False)
        finally:
            os.close(secondary)
        assert done.returncode == 0
        shown = b""
        with contextlib.suppress(OSError):  # EIO once everything written has been read
            while chunk := os.read(primary, 65536):
                shown += chunk
        return shown
    finally:
        os.close(primary)


def test_no_color_is_djangos_option_too(sqlite_site: Example) -> None:
    """`manage.py afterparty status --no-color` at a terminal: no escape codes, as with every
    Django command; without it, state words are colored."""
    assert b"\x1b[" in run_in_pty(sqlite_site, "afterparty", "status")
    plain = run_in_pty(sqlite_site, "afterparty", "status", "--no-color")
    assert b"welcome_points" in plain and b"\x1b[" not in plain


STEP, BREAKS, LATER = "20261127000000", "20261127000001", "20261127000002"
DECISION_TASKS = {
    f"{STEP}_tell_customer.py": '''
from afterparty import task


@task(description="Tell customer X that issue 111 is fixed", manual=True, owner="support")
def run(ctx):
    """Call customer X and tell them issue 111 is fixed."""
''',
    f"{BREAKS}_breaks.py": '''
from afterparty import task


@task(description="Call the partner API")
def run(ctx):
    raise RuntimeError("the partner API said no")
''',
    f"{LATER}_later.py": '''
from afterparty import task


@task(description="Not before the next century", not_before="2999-01-01T00:00:00+00:00")
def run(ctx):
    pass
''',
}

# Two staff members in the admin: "ops" may confirm, resolve and skip, "viewer" may only look.
ADMIN_DECISIONS = """
import json
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()
LIST = "/admin/afterparty/task/"
STEP, BREAKS, LATER = %r
results = {}


def staff(name, *codenames):
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="afterparty",
                                                        codename__in=["view_task", *codenames]))
    client = Client()
    assert client.login(username=name, password="pw")
    return client


def act(client, action, version, **fields):
    form = {"action": action, "_selected_action": [version], **fields}
    if "post" not in fields:
        form["index"] = "0"  # the action chosen on the list, as the list's form sends it
    response = client.post(LIST, form, follow=True)
    return {"status": response.status_code, "text": response.text,
            "messages": [str(m) for m in response.context["messages"]] if response.context else []}


viewer = staff("viewer")
results["viewer_list"] = viewer.get(LIST).text
results["viewer_confirm"] = act(viewer, "confirm_steps", STEP)
results["viewer_confirm_post"] = act(viewer, "confirm_steps", STEP, post="yes",
                                     note="sneaky", **{"seen_" + STEP: "awaiting"})

ops = staff("ops", "confirm_task", "resolve_task", "skip_task")
results["ops_list"] = ops.get(LIST).text
results["page"] = act(ops, "confirm_steps", STEP)
results["confirmed"] = act(ops, "confirm_steps", STEP, post="yes", note="told them by phone",
                           **{"seen_" + STEP: "awaiting"})
results["stale"] = act(ops, "confirm_steps", STEP, post="yes", note="again",
                       **{"seen_" + STEP: "awaiting"})
results["wrong_state"] = act(ops, "confirm_steps", BREAKS)
results["resolve_page"] = act(ops, "resolve_tasks", BREAKS)
results["resolved"] = act(ops, "resolve_tasks", BREAKS, post="yes", choice="skip",
                          note="the partner does it by hand", **{"seen_" + BREAKS: "failed"})
results["skip_without_reason"] = act(ops, "skip_tasks", LATER, post="yes", note=" ",
                                     **{"seen_" + LATER: "pending"})
results["skipped"] = act(ops, "skip_tasks", LATER, post="yes", note="not needed any more",
                         **{"seen_" + LATER: "pending"})
print("RESULTS " + json.dumps(results))
"""


@pytest.mark.parametrize("site", ["sqlite", "postgresql"], indirect=True)
def test_the_admin_confirms_resolves_and_skips_with_django_permissions(site: Example) -> None:
    """The admin as the console of a Django project: a staff member with the permissions
    confirms a human step with a note, resolves a failed task and skips one that has not run,
    each through a page that asks for the note; one without them is refused, and so is a
    decision on a task whose state changed meanwhile. The history says who decided, via the
    admin."""
    for file_name, text in DECISION_TASKS.items():
        (site.root / "release_tasks" / file_name).write_text(text)
    ran = site.run("afterparty", "run", "--keep-going", "--no-input")
    assert ran.code == 1, ran.both
    states = "SELECT version, state FROM afterparty_tasks WHERE version >= '2026112700' ORDER BY version"
    before = [(STEP, "awaiting"), (BREAKS, "failed"), (LATER, "pending")]
    assert site.query(states) == before

    script = site.run("shell", "-c", ADMIN_DECISIONS % ((STEP, BREAKS, LATER),))
    assert script.code == 0, script.both
    (line,) = [line for line in script.out.splitlines() if line.startswith("RESULTS ")]
    results = json.loads(line.removeprefix("RESULTS "))

    assert 'value="confirm_steps"' not in results["viewer_list"]  # no action is offered to a viewer
    for refused in ("viewer_confirm", "viewer_confirm_post"):
        assert results[refused]["messages"] == [
            "You may not confirm release tasks: it takes the permission afterparty.confirm_task. "
            "Nothing was changed."], refused

    assert 'value="confirm_steps"' in results["ops_list"]
    page = results["page"]
    assert page["status"] == 200 and page["messages"] == []
    for part in ("Confirm human steps", f"{STEP} tell_customer — awaiting",
                 "Call customer X and tell them issue 111 is fixed.", 'name="note"',
                 f'name="seen_{STEP}" value="awaiting"', 'name="csrfmiddlewaretoken"'):
        assert part in page["text"], part
    assert results["confirmed"]["messages"] == [
        f"{STEP} tell_customer: awaiting → succeeded, recorded as decided by ops."]
    (stale,) = results["stale"]["messages"]
    assert f"task {STEP} tell_customer is succeeded now, not awaiting as shown" in stale
    assert stale.endswith("Nothing was changed.")
    assert results["wrong_state"]["messages"] == [
        f"task {BREAKS} is failed, not awaiting: there is nothing to confirm. Nothing was changed."]
    assert 'name="choice" value="retry"' in results["resolve_page"]["text"]
    assert "the partner API said no" in results["resolve_page"]["text"]  # the error, to decide on
    assert results["resolved"]["messages"] == [
        f"{BREAKS} breaks: failed → skipped, recorded as decided by ops."]
    assert "Write why: it is kept in the history." in results["skip_without_reason"]["text"]
    assert results["skip_without_reason"]["messages"] == []
    assert results["skipped"]["messages"] == [
        f"{LATER} later: pending → skipped, recorded as decided by ops."]

    assert site.query(states) == [(STEP, "succeeded"), (BREAKS, "skipped"), (LATER, "skipped")]
    shown = json.loads(site.run("afterparty", "show", STEP, "--json").out)
    confirmation = shown["attempts"][-1]
    assert confirmation["action"] == "confirm" and confirmation["note"] == "told them by phone"
    assert confirmation["username"] == "ops via Django admin"
    assert len(shown["attempts"]) == 2  # the step's question, then the one confirmation
    decided = site.query("SELECT action, username, note FROM afterparty_attempts "
                         f"WHERE version IN ('{BREAKS}', '{LATER}') AND action <> 'run' ORDER BY id")
    assert decided == [("resolve --skip", "ops via Django admin", "the partner does it by hand"),
                       ("skip", "ops via Django admin", "not needed any more")]


ADMIN_CONFIRM_WHILE_BUSY = """
from django.contrib.auth.models import User
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()
User.objects.create_superuser("admin", "admin@example.com", "pw")
client = Client()
client.login(username="admin", password="pw")
response = client.post("/admin/afterparty/task/", {
    "action": "confirm_steps", "_selected_action": [%r], "post": "yes", "note": "done",
    "seen_%s": "awaiting"}, follow=True)
for message in response.context["messages"]:
    print("MESSAGE", message)
"""


@pytest.mark.parametrize("site", ["sqlite", "postgresql"], indirect=True)
def test_the_admin_does_not_decide_while_a_run_holds_the_lock(site: Example) -> None:
    """A person confirming during a deploy is told to try again after it; the request does not
    wait for the run."""
    from conftest import stop, wait_until

    (site.root / "release_tasks" / f"{STEP}_tell_customer.py").write_text(
        DECISION_TASKS[f"{STEP}_tell_customer.py"])
    assert site.run("afterparty", "run", "--no-input").code == 0
    started, finish = site.root / "started", site.root / "finish"
    site.write_task(f"{BREAKS}_slow.py", "import os, time", f"""
        open({str(started)!r}, "w").close()
        deadline = time.monotonic() + 120
        while not os.path.exists({str(finish)!r}) and time.monotonic() < deadline:
            time.sleep(0.05)
    """)
    runner = site.popen("afterparty", "run", "--no-input")
    try:
        wait_until(started.exists, "the slow task starting")
        confirming = site.run("shell", "-c", ADMIN_CONFIRM_WHILE_BUSY % (STEP, STEP))
        assert confirming.code == 0, confirming.both
        (message,) = [line for line in confirming.out.splitlines() if line.startswith("MESSAGE ")]
        assert message.startswith("MESSAGE a run holds the lock of this environment")
        assert message.endswith(": try again when it is over. Nothing was changed.")
        finish.touch()
        assert runner.wait(timeout=120) == 0
    finally:
        stop(runner)
    assert site.query(f"SELECT state FROM afterparty_tasks WHERE version = '{STEP}'") == [("awaiting",)]


ADMIN_TAMPERED = """
from django.contrib.auth.models import User
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()
User.objects.create_superuser("admin", "admin@example.com", "pw")
client = Client(raise_request_exception=False)
client.login(username="admin", password="pw")
for seen in ({"seen_%(step)s": "finished"}, {"seen_%(step)s": ""}, {}):
    response = client.post("/admin/afterparty/task/", {
        "action": "confirm_steps", "_selected_action": ["%(step)s"], "post": "yes", "note": "x",
        **seen})
    print("ANSWER", response.status_code, response.content.decode())
"""


def test_a_tampered_seen_state_in_the_admin_is_a_400_and_changes_nothing(sqlite_site: Example) -> None:
    site = sqlite_site
    (site.root / "release_tasks" / f"{STEP}_tell_customer.py").write_text(
        DECISION_TASKS[f"{STEP}_tell_customer.py"])
    assert site.run("afterparty", "run", "--no-input").code == 0
    tampered = site.run("shell", "-c", ADMIN_TAMPERED % {"step": STEP})
    assert tampered.code == 0, tampered.both
    answers = [line for line in tampered.out.splitlines() if line.startswith("ANSWER ")]
    assert len(answers) == 3 and all(answer.startswith("ANSWER 400 This form does not say which "
                                                       "state each task was in") for answer in answers)
    assert "nothing was changed" in answers[0]
    assert site.query(f"SELECT state FROM afterparty_tasks WHERE version = '{STEP}'") == [("awaiting",)]
