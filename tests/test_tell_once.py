"""Tell them once, and only once the release has stuck (issue 19), on every backend: notices
held with the task's work, ``live_for`` and ``after=``, ``tick``, reminders, and a deploy of an
older release noticed and rolled back. A local webhook receiver counts what people were told."""

from __future__ import annotations

import json
import re
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from conftest import Project, stop, wait_until


class Hook:
    """A webhook receiver (Apprise's ``json://`` posts to it) that counts messages; told to
    ``hang``, it holds the next request without answering (a sender killed mid-send) and never
    counts it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.hang = False
        self.hanging = threading.Event()
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hook.hang:
                    hook.hang = False
                    hook.hanging.set()
                    hook.release.wait(60)
                    return  # the connection closes unanswered: nothing was received
                hook.messages.append({**body, "path": self.path})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, path: str) -> list[dict[str, Any]]:
        """The messages posted to one path of the hook (one person's URL)."""
        return [m for m in self.messages if m["path"] == path]

    def bodies(self) -> list[str]:
        """What the tasks told (the runner's own notices, titled "Release ...", aside)."""
        return [m["message"] for m in self.messages if not m["title"].startswith("Release ")]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    yield receiver
    receiver.close()


def told(project: Project, hook: Hook, **more: str) -> dict[str, str]:
    """The environment of a deploy that tells people through the hook."""
    return {"AFTERPARTY_NOTIFY": hook.url, "AFTERPARTY_ENV": "production", **more}


# --- 1. Notices held with the task's work ----------------------------------------------------


def test_a_task_that_notified_then_failed_tells_nobody_and_its_retry_tells_once(
        project: Project, hook: Hook) -> None:
    ready = project.root / "ready"
    project.write_task("20260101000001", "tell_customer", f"""
        import os
        ctx.db.execute("CREATE TABLE IF NOT EXISTS credits (customer VARCHAR(20))")
        ctx.db.execute("INSERT INTO credits (customer) VALUES (%s)", ("x",))
        ctx.notify("Issue 111 is fixed in release %s" % ctx.release, title="Issue 111")
        if not os.path.exists({str(ready)!r}):
            raise RuntimeError("the partner API is down")
    """)
    env = told(project, hook, AFTERPARTY_RELEASE="r1")
    failed = project.cli("run", extra_env=env)
    assert failed.code == 1, failed.both
    assert "notice held until the task succeeds: Issue 111 is fixed in release r1" in failed.out
    ready.write_text("")
    retried = project.cli("run", extra_env=env)
    assert retried.code == 0, retried.both
    assert "summary: 1 succeeded, 1 notice(s) sent" in retried.out
    assert hook.bodies() == ["Issue 111 is fixed in release r1"]
    assert project.cli("run", extra_env=env).code == 0
    assert hook.bodies() == ["Issue 111 is fixed in release r1"]
    # The failed attempt's notice was rolled back with its work; the one of the attempt that
    # succeeded went out, with what each service said.
    assert project.query("SELECT COUNT(*) FROM credits") == [(1,)]
    rows = project.query("SELECT attempt_id, sent_at, results FROM afterparty_notices")
    assert [(attempt, sent is not None) for attempt, sent, _ in rows] == [(2, True)]
    (result,) = json.loads(str(rows[0][2]))
    assert result["service"] == "JSON" and result["ok"] is True
    assert result["url"].startswith(hook.url.replace("/hook", "/hook?"))


def test_a_long_task_holds_its_notices_in_its_batches_and_sends_them_only_if_it_succeeds(
        project: Project, hook: Hook) -> None:
    ready = project.root / "ready"
    project.write_task("20260101000001", "backfill", f"""
        import os
        ctx.notify("starting the backfill")
        with ctx.batch(checkpoint=1):
            ctx.notify("first batch done")
        if not os.path.exists({str(ready)!r}):
            raise RuntimeError("stopped half-way")
    """, options="atomic=False")
    env = told(project, hook)
    assert project.cli("run", extra_env=env).code == 1
    assert hook.bodies() == []
    ready.write_text("")
    assert project.cli("run", extra_env=env).code == 0
    assert hook.bodies() == ["starting the backfill", "first batch done"]


@pytest.mark.parametrize("next_command", ["run", "tick"])
def test_a_runner_killed_between_the_commit_and_the_send_leaves_it_to_the_next_run_or_tick(
        project: Project, hook: Hook, next_command: str) -> None:
    """At least once, never lost: the runner dies while it sends (after the commit); the next
    ``run`` or ``tick`` finds the notice held and sends it."""
    project.write_task("20260101000001", "tell_customer", 'ctx.notify("Issue 111 is fixed")')
    hook.hang = True
    runner = project.popen("run", extra_env=told(project, hook))
    try:
        assert hook.hanging.wait(60), "the runner never sent the notice"
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
    finally:
        stop(runner)
    hook.release.set()
    assert project.query("SELECT state FROM afterparty_tasks") == [("succeeded",)]
    assert project.query("SELECT sent_at FROM afterparty_notices") == [(None,)]
    gate = project.cli("verify", extra_env=told(project, hook))
    assert gate.code == 6 and "notice held, due" in gate.out, gate.both

    again = project.cli(next_command, extra_env=told(project, hook))
    assert again.code == 0, again.both
    assert ("sent 1 held notice(s)" if next_command == "run" else "tick: 1 notice(s) sent") \
        in again.out
    assert hook.bodies() == ["Issue 111 is fixed"]
    assert project.cli("verify", extra_env=told(project, hook)).code == 0


def test_older_records_gain_the_outbox_under_the_lock(project: Project, hook: Hook) -> None:
    """Records made by an afterparty of schema 2: the first run that has work adds releases,
    sources and notices, and keeps every record."""
    from afterparty.records import SCHEMA_VERSION

    project.write_task("20260101000001", "first")
    assert project.cli("run").code == 0
    for table in ("notices", "sources", "releases"):
        project.query(f"DROP TABLE afterparty_{table}")
    project.query("UPDATE afterparty_meta SET meta_value = '2' WHERE meta_key = 'schema'")
    nothing = project.cli("run", extra_env=told(project, hook))
    assert nothing.code == 0 and "no pending tasks" in nothing.out, nothing.both

    project.write_task("20260101000002", "tell", 'ctx.notify("told")')
    assert project.cli("run", extra_env=told(project, hook)).code == 0
    assert hook.bodies() == ["told"]
    assert project.query("SELECT meta_value FROM afterparty_meta WHERE meta_key = 'schema'") == [
        (str(SCHEMA_VERSION),)]
    assert project.query("SELECT version, state FROM afterparty_tasks ORDER BY version") == [
        ("20260101000001", "succeeded"), ("20260101000002", "succeeded")]


def test_the_notify_owners_table_and_the_notify_urls_in_pyproject(sqlite_project: Project,
                                                                  hook: Hook) -> None:
    (sqlite_project.root / "pyproject.toml").write_text(
        '[project]\nname = "app"\n\n[tool.afterparty.notify]\n'
        f'urls = ["{hook.url}"]\n\n[tool.afterparty.notify.owners]\nops = ["{hook.url}?ops"]\n')
    sqlite_project.write_task("20260101000001", "tell", 'ctx.notify("from the table")')
    assert sqlite_project.cli("run").code == 0
    assert hook.bodies() == ["from the table"]



# --- 2. Only once the release has stuck -------------------------------------------------------


def test_a_live_for_task_waits_until_the_release_has_been_live_that_long(
        project: Project, hook: Hook) -> None:
    project.write_task("20260101000001", "tell_customer", 'ctx.notify("Issue 111 is fixed")',
                       options='live_for="3s"')
    env = told(project, hook, AFTERPARTY_RELEASE="4f2c9e1")
    first = project.cli("run", extra_env=env)
    assert first.code == 0, first.both
    assert re.search(r"tell_customer waiting: release 4f2c9e1 live for [0-2] s of 3 \(deployed "
                     r"here \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)", first.out), first.out
    status = project.cli("status", extra_env=env)
    assert re.search(r"pending .* waiting: release 4f2c9e1 live for [0-3] s of 3$", status.out,
                     re.M), status.out
    allowed = project.cli("verify", "--allow-pending", extra_env=env)
    assert allowed.code == 0, allowed.both
    assert re.search(r"tell_customer: pending, allowed - waiting: release 4f2c9e1 live for [0-3] "
                     r"s of 3", allowed.out), allowed.out
    assert project.cli("verify", extra_env=env).code == 6
    assert hook.bodies() == []

    wait_until(lambda: project.cli("run", extra_env=env).code == 0 and bool(hook.bodies()),
          "the task once its release had been live 3 s")
    assert hook.bodies() == ["Issue 111 is fixed"]
    assert project.query("SELECT state FROM afterparty_tasks") == [("succeeded",)]


def test_a_notice_held_after_the_release_is_live_waits_for_it(project: Project, hook: Hook) -> None:
    project.write_task("20260101000001", "tell_customer", """
        ctx.notify("deploying issue 111's fix")
        ctx.notify("Issue 111 is fixed", after="3s")
    """)
    env = told(project, hook, AFTERPARTY_RELEASE="4f2c9e1")
    first = project.cli("run", extra_env=env)
    assert first.code == 0, first.both
    assert "notice held until the task succeeds and release 4f2c9e1 has been live 3 s" in first.out
    assert hook.bodies() == ["deploying issue 111's fix"]
    status = project.cli("status", extra_env=env)
    assert re.search(r"succeeded .* notice held, waiting: release 4f2c9e1 live for [0-3] s of 3$",
                     status.out, re.M), status.out
    allowed = project.cli("verify", "--allow-pending", extra_env=env)
    assert allowed.code == 0 and "notice held, waiting: release 4f2c9e1" in allowed.out

    wait_until(lambda: project.cli("run", extra_env=env).code == 0 and len(hook.bodies()) == 2,
          "the held notice once its release had been live 3 s")
    assert hook.bodies() == ["deploying issue 111's fix", "Issue 111 is fixed"]
    assert project.cli("verify", extra_env=env).code == 0


def test_a_release_deployed_again_after_it_was_rolled_back_starts_its_clock_anew(
        sqlite_project: Project) -> None:
    """What live_for counts from: the first deployment of the release here (a deploy with
    nothing to run records it too); a release rolled back and deployed again starts anew."""
    project = sqlite_project
    project.write_task("20260101000001", "first")
    assert project.cli("run", extra_env={"AFTERPARTY_RELEASE": "r1"}).code == 0
    assert project.cli("run", extra_env={"AFTERPARTY_RELEASE": "r2"}).code == 0  # nothing to run
    seen = project.query("SELECT release_id, first_deployed_at FROM afterparty_releases "
                         "ORDER BY first_deployed_at")
    assert [release for release, _ in seen] == ["r1", "r2"]
    assert project.cli("run", extra_env={"AFTERPARTY_RELEASE": "r1"}).code == 0
    assert project.query("SELECT release_id, first_deployed_at FROM afterparty_releases "
                         "ORDER BY first_deployed_at") == seen


# --- 3. tick: what moves between deploys -----------------------------------------------------


def tick_until(project: Project, env: dict[str, str], done: Callable[[], bool], what: str) -> None:
    """Run ``afterparty tick`` as cron would, until ``done`` (a deadline, no fixed sleep)."""
    def ticked() -> bool:
        result = project.cli("tick", extra_env=env)
        assert result.code == 0, result.both
        return done()

    wait_until(ticked, what)


def test_tick_runs_a_live_for_task_and_sends_a_held_notice_once_their_time_came(
        project: Project, hook: Hook) -> None:
    project.write_task("20260101000001", "tell_customer", """
        ctx.notify("Issue 111 is fixed")
        ctx.notify("How is the fix working for you?", after="4s")
    """, options='live_for="3s"')
    env = told(project, hook, AFTERPARTY_RELEASE="r1")
    deploy = project.cli("run", extra_env=env)
    assert deploy.code == 0 and "tell_customer waiting: release r1" in deploy.out, deploy.both
    assert project.cli("tick", extra_env=env).out.strip() == "tick: nothing due"

    tick_until(project, env, lambda: bool(hook.bodies()), "tick running the task once r1 was live 3 s")
    # The first notice goes with the task's success; on a loaded machine the tick that runs it
    # may come after the second one's time too, and send both, in order.
    assert hook.bodies()[0] == "Issue 111 is fixed"
    assert project.query("SELECT state FROM afterparty_tasks") == [("succeeded",)]
    tick_until(project, env, lambda: len(hook.bodies()) == 2, "tick sending the held notice")
    assert hook.bodies() == ["Issue 111 is fixed", "How is the fix working for you?"]
    again = project.cli("tick", extra_env=env)
    assert again.code == 0 and again.out.strip() == "tick: nothing due", again.both
    assert len(hook.bodies()) == 2


def test_tick_asks_a_condition_again_and_never_retries_a_failed_task(sqlite_project: Project) -> None:
    project = sqlite_project
    flag = project.root / "partner_is_live"
    ledger = project.root / "ledger"
    project.write_task("20260101000001", "call_partner", f"open({str(ledger)!r}, 'a').write('called')",
                       header=f"""
        import os


        def partner_is_live(ctx):
            return os.path.exists({str(flag)!r})
    """, options="when=partner_is_live")
    project.write_task("20260101000002", "breaks", "raise RuntimeError('no')")
    assert project.cli("run", "--keep-going").code == 1
    assert "tick: 0 task(s) ran, 1 still waiting" in project.cli("tick").out  # asked again: not met
    flag.write_text("")
    ticked = project.cli("tick")
    assert ticked.code == 0, ticked.both
    assert "call_partner succeeded" in ticked.out and "tick: 1 task(s) ran" in ticked.out
    assert ledger.read_text() == "called"
    assert project.query("SELECT version, state FROM afterparty_tasks ORDER BY version") == [
        ("20260101000001", "succeeded"), ("20260101000002", "failed")]
    assert project.cli("tick").out.strip() == "tick: nothing due"


def test_tick_with_nothing_due_imports_no_task_file_and_takes_no_lock(project: Project) -> None:
    from test_fast_path import NEVER_ON_THE_NO_OP_PATH, imported_modules

    marker = project.root / "imported"
    for n in range(3):
        project.write_task(f"2026010100000{n}", f"task_{n}",
                           header=f"open({str(marker)!r}, 'a').write('x')\n")
    assert project.cli("run").code == 0
    marker.unlink()
    code, modules, out = imported_modules(project, "tick")
    assert code == 0 and out.strip() == "tick: nothing due"
    assert not marker.exists()
    for name in NEVER_ON_THE_NO_OP_PATH:
        assert not any(m == name or m.startswith(name + ".") for m in modules), name


# --- 4. Reminders that find someone -----------------------------------------------------------


def test_tick_reminds_the_owner_of_a_waiting_step_and_escalates_to_whom_it_names(
        project: Project, hook: Hook) -> None:
    base = hook.url.rsplit("/", 1)[0]
    (project.root / "pyproject.toml").write_text(
        '[project]\nname = "app"\n\n[tool.afterparty.notify]\n'
        f'urls = ["{base}/team"]\n\n[tool.afterparty.notify.owners]\n'
        f'ops = ["{base}/ops"]\noncall = ["{base}/oncall"]\n')
    project.write_task("20260101000001", "rotate_key", 'return "Rotate the partner API key in the vault."',
                       options='description="Rotate the partner API key", manual=True, owner="ops", '
                               'remind_every="1s", escalate_after="2s", escalate_to="oncall"')
    env = {"AFTERPARTY_ENV": "production", "AFTERPARTY_WEB_URL": "https://ops.example.com/afterparty"}
    deploy = project.cli("run", "--no-input", extra_env=env)
    assert deploy.code == 0 and "awaiting ops" in deploy.out, deploy.both
    assert [m["title"] for m in hook.to("/team")] == ["Release step awaits ops"]

    tick_until(project, env, lambda: bool(hook.to("/oncall")), "an escalation to oncall")
    reminder = hook.to("/ops")[0]
    assert reminder["title"] == "Reminder: a release step awaits ops"
    assert re.match(r"Reminder: the release step 20260101000001_rotate_key \(Rotate the partner API "
                    r"key\) awaits ops in production \(.*\); it has waited \d+ s\.", reminder["message"])
    assert "Rotate the partner API key in the vault." in reminder["message"]
    assert reminder["message"].endswith(
        "When it is done: afterparty confirm 20260101000001 or "
        "https://ops.example.com/afterparty/env/production/tasks/20260101000001")
    escalation = hook.to("/oncall")[0]
    assert escalation["title"].startswith("Escalation: a release step awaits ops for ")
    assert re.match(r"Escalation to oncall: .* it has waited \d+ s, more than 2 s\.",
                    escalation["message"])
    assert project.query("SELECT COUNT(*) FROM afterparty_notices WHERE sent_at IS NULL") == [(0,)]

    assert project.cli("confirm", "rotate_key", extra_env=env).code == 0
    told_so_far = len(hook.messages)
    assert project.cli("tick", extra_env=env).out.strip() == "tick: nothing due"
    assert len(hook.messages) == told_so_far


# --- 5. A deploy of an older release noticed ---------------------------------------------------


def test_a_deploy_of_an_older_release_that_lacks_the_files_of_tasks_that_ran_is_noticed(
        project: Project) -> None:
    r1, r2, r3 = ({"AFTERPARTY_RELEASE": name} for name in ("r1", "r2", "r3"))
    project.write_task("20260101000001", "seed_plans")
    assert project.cli("run", extra_env=r1).code == 0
    b = project.write_task("20260101000002", "enable_search_v2")
    c = project.write_task("20260101000003", "tell_sales")
    assert project.cli("run", extra_env=r2).code == 0
    b.unlink()
    c.unlink()  # r1 again: its files lack r2's tasks

    again = project.cli("run", extra_env=r1)
    assert again.code == 0, again.both
    assert again.out.splitlines()[-1] == (
        "rolled back: release r2 was deployed here after the release deployed now, which lacks "
        "the files of 2 task(s) that ran in it (20260101000002_enable_search_v2, "
        "20260101000003_tell_sales); settle it with `afterparty rollback --release r2` (see "
        "--dry-run)")
    gate = project.cli("verify", "--allow-pending", extra_env=r1)
    assert gate.code == 6, gate.both
    assert ("20260101000002 enable_search_v2: rolled back - it ran in release r2, deployed here "
            "after the release deployed now, which lacks its file (`afterparty rollback --release "
            "r2` runs the undo steps of that release (see --dry-run))") in gate.out
    assert "20260101000003 tell_sales: rolled back" in gate.out
    status = project.cli("status", extra_env=r1)
    assert "file missing, rolled back: it ran in release r2" in status.out, status.out

    # A newer release that leaves r2's task files out (a clean-up) rolls nothing back.
    assert "rolled back" not in project.cli("run", extra_env=r3).out
    assert project.cli("verify", extra_env=r3).code == 0


# --- 6. rollback --release: the story of the issue, end to end ---------------------------------

SEARCH_V2 = '''
from afterparty import task


@task(description="Switch the shop to search v2")
def run(ctx):
    ctx.db.execute("CREATE TABLE IF NOT EXISTS flags (name VARCHAR(50) PRIMARY KEY, enabled INTEGER)")
    ctx.db.execute("INSERT INTO flags (name, enabled) VALUES (%s, 1)", ("search_v2",))
    ctx.notify("Issue 111 is fixed: search finds your orders again", after="2s")


@run.undo
def switch_back(ctx):
    ctx.db.execute("DELETE FROM flags WHERE name = %s", ("search_v2",))
    print("search v2 is off")
'''


def test_a_customer_is_told_only_once_the_release_stuck_and_never_when_it_is_rolled_back(
        project: Project, hook: Hook) -> None:
    r1, r2 = (told(project, hook, AFTERPARTY_RELEASE=name) for name in ("r1", "r2"))
    project.write_task("20260101000001", "seed_plans")
    assert project.cli("run", extra_env=r1).code == 0
    search = project.tasks_dir / "20260101000002_enable_search_v2.py"
    search.write_text(SEARCH_V2)
    deployed = project.cli("run", extra_env=r2)
    assert deployed.code == 0, deployed.both
    assert project.query("SELECT name FROM flags") == [("search_v2",)]
    search.unlink()  # r1 deployed again: r2's files are gone

    again = project.cli("run", extra_env=r1)
    assert again.code == 0 and "rolled back: release r2" in again.out, again.both
    gate = project.cli("verify", extra_env=r1)
    assert gate.code == 6, gate.both
    assert "20260101000002 enable_search_v2: rolled back" in gate.out
    assert "`afterparty rollback --release r2`" in gate.out

    plan = project.cli("rollback", "--release", "r2", "--dry-run", extra_env=r1)
    assert plan.code == 0, plan.both
    assert plan.out.splitlines() == [
        "would undo 20260101000002_enable_search_v2 (succeeded) from the source kept when it ran "
        "(its file is gone)",
        f"would drop the notice of 20260101000002 held since {plan.out.split('held since ')[1][:19]}: "
        "Issue 111 is fixed: search finds your orders again",
        "nothing was changed"]
    rolled = project.cli("rollback", "--release", "r2", extra_env=r1)
    assert rolled.code == 0, rolled.both
    assert "search v2 is off" in rolled.out and "enable_search_v2 reverted" in rolled.out
    assert "release r2 rolled back: 1 undone, 1 notice(s) dropped" in rolled.out
    assert project.query("SELECT name FROM flags") == []
    history = json.loads(project.cli("show", "enable_search_v2", "--json", extra_env=r1).out)
    assert [(a["action"], a["state"], a["release_id"]) for a in history["attempts"]] == [
        ("run", "succeeded", "r2"), ("rollback", "succeeded", "r1")]
    assert project.cli("verify", extra_env=r1).code == 0

    # The customer message would have been due 2 s after r2's deployment: it never goes out.
    due = str(project.query("SELECT due_at FROM afterparty_notices")[0][0])
    wait_until(lambda: datetime.now(timezone.utc) > datetime.fromisoformat(due), "its due time")
    assert project.cli("tick", extra_env=r1).out.strip() == "tick: nothing due"
    assert project.cli("run", extra_env=r1).code == 0
    assert hook.bodies() == []


def test_a_task_whose_kept_source_no_longer_imports_is_left_for_record_only(
        sqlite_project: Project) -> None:
    project = sqlite_project
    helpers = project.root / "search_helpers.py"
    helpers.write_text("def off():\n    print('off')\n")
    project.write_task("20260101000001", "enable_search", "pass", header="import search_helpers\n")
    path = project.tasks_dir / "20260101000001_enable_search.py"
    path.write_text(path.read_text() + "\n\n@run.undo\ndef undo(ctx):\n    search_helpers.off()\n")
    assert project.cli("run", extra_env={"AFTERPARTY_RELEASE": "r2"}).code == 0
    path.unlink()
    helpers.unlink()
    left = project.cli("rollback", "--release", "r2", extra_env={"AFTERPARTY_RELEASE": "r1"})
    assert left.code == 0, left.both
    assert ("left 20260101000001_enable_search (succeeded): its source cannot be loaded "
            "(20260101000001_enable_search.py:2: cannot import: ModuleNotFoundError: No module "
            "named 'search_helpers')") in left.out
    recorded = project.cli("rollback", "--release", "r2", "--record-only",
                           extra_env={"AFTERPARTY_RELEASE": "r1"})
    assert recorded.code == 0 and "20260101000001_enable_search: marked reverted" in recorded.out
    assert project.query("SELECT state FROM afterparty_tasks") == [("reverted",)]


def test_a_notice_goes_out_only_while_the_work_it_announces_stands(sqlite_project: Project,
                                                                   hook: Hook) -> None:
    """A task rolled back on its own (not its release) before its held message was due: the
    message never goes out; run again, the task holds a new one, which does."""
    project = sqlite_project
    (project.tasks_dir / "20260101000001_enable_search_v2.py").write_text(SEARCH_V2)
    env = told(project, hook, AFTERPARTY_RELEASE="r1")
    assert project.cli("run", extra_env=env).code == 0
    assert project.cli("rollback", "enable_search_v2", extra_env=env).code == 0
    due = str(project.query("SELECT due_at FROM afterparty_notices")[0][0])
    wait_until(lambda: datetime.now(timezone.utc) > datetime.fromisoformat(due), "its due time")
    assert project.cli("tick", extra_env=env).out.strip() == "tick: nothing due"
    assert hook.bodies() == []
    assert project.cli("verify", extra_env=env).code == 6  # reverted: pending again, file here

    again = project.cli("run", extra_env=env)
    assert again.code == 0 and "1 notice(s) sent" in again.out, again.both
    assert hook.bodies() == ["Issue 111 is fixed: search finds your orders again"]
