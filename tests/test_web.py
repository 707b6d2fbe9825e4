"""The web console over HTTP (Starlette's test client): pages, decisions and every refusal, on
tasks really run by the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import pytest

from afterparty.config import Settings
from afterparty.session import Session
from conftest import Project, clean_env, stop, wait_until
from web_helpers import (
    BACKFILL,
    FAILING,
    HUMAN_STEP,
    LATER,
    PASSWORDS,
    TestClient,
    console,
    csrf,
    history,
    set_up_tasks,
    sign_in,
    start_backfill,
    state,
    task_url,
    web_config,
    web_table,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def web_project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """A project on SQLite or PostgreSQL with a human step awaiting, a failed task and a pending one."""
    url = (f"sqlite:///{tmp_path / 'records.sqlite3'}" if request.param == "sqlite"
           else str(request.getfixturevalue("postgresql_url")))
    root = tmp_path / "app"
    (root / "release_tasks").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "app"\n\n[tool.afterparty]\n')
    project = Project(root, url, clean_env(url))
    set_up_tasks(project)
    return project


def test_pages_need_a_login_and_the_right_password(web_project: Project,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    client = console(web_project, monkeypatch)
    for page in ("/", "/matrix", task_url(HUMAN_STEP)):
        sent = client.get(page)
        assert sent.status_code == 303 and sent.headers["location"] == f"/login?next={page}"
    assert client.get("/api/v1/status").status_code == 401

    form = client.get("/login")
    with caplog.at_level(logging.WARNING, logger="afterparty.web"):
        wrong = client.post("/login", data={"username": "alice", "password": "wrong",
                                            "csrf_token": csrf(form.text), "next": "/"})
    assert wrong.status_code == 401 and "wrong name or password" in wrong.text
    assert "failed login for 'alice'" in caplog.text
    assert client.get("/").status_code == 303

    right = client.post("/login", data={"username": "alice", "password": PASSWORDS["alice"],
                                        "csrf_token": csrf(form.text), "next": "/matrix"})
    assert right.status_code == 303 and right.headers["location"] == "/matrix"
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/").status_code == 200


def test_confirm_from_the_browser_is_recorded_with_the_persons_name(
        web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(web_project, monkeypatch)
    sign_in(client)
    page = client.get(task_url(HUMAN_STEP))
    assert page.status_code == 200
    assert "Restart every search node." in page.text  # the step's instructions
    assert f'action="/env/development/tasks/{HUMAN_STEP}/confirm"' in page.text

    done = client.post(task_url(HUMAN_STEP) + "/confirm", data={
        "csrf_token": csrf(page.text), "expected": "awaiting", "note": "restarted 3 nodes"})
    assert done.status_code == 303 and done.headers["location"] == task_url(HUMAN_STEP)
    after = client.get(task_url(HUMAN_STEP)).text
    assert "awaiting -&gt; succeeded" in after and "restarted 3 nodes" in after
    assert "alice (via web)" in after

    assert state(web_project, HUMAN_STEP) == "succeeded"
    last = history(web_project, HUMAN_STEP)[-1]
    assert (last["action"], last["state"], last["note"], last["username"]) == (
        "confirm", "succeeded", "restarted 3 nodes", "alice (via web)")


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(
        web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(web_project, monkeypatch)
    sign_in(client)
    for token in ({}, {"csrf_token": "forged"}):
        refused = client.post(task_url(HUMAN_STEP) + "/confirm",
                              data={**token, "expected": "awaiting", "note": "x"})
        assert refused.status_code == 403 and "nothing was changed" in refused.text
    assert state(web_project, HUMAN_STEP) == "awaiting"
    assert len(history(web_project, HUMAN_STEP)) == 1


def test_a_decision_on_a_state_that_changed_meanwhile_is_refused(
        web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(web_project, monkeypatch)
    sign_in(client)
    page = client.get(task_url(FAILING))
    assert 'name="expected" value="failed"' in page.text
    assert web_project.cli("resolve", FAILING, "--skip", "--note", "from the terminal").code == 0

    late = client.post(task_url(FAILING) + "/resolve", data={
        "csrf_token": csrf(page.text), "expected": "failed", "choice": "retry", "note": "again"})
    assert late.status_code == 409
    assert f"task {FAILING} call_partner is skipped now, not failed as shown" in late.text
    assert "someone changed it meanwhile" in late.text
    assert state(web_project, FAILING) == "skipped"
    assert [a["note"] for a in history(web_project, FAILING)] == [None, "from the terminal"]


def test_a_read_only_user_may_look_but_not_decide(web_project: Project,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    web_table(web_project, 'read_only = ["carol"]')
    client = console(web_project, monkeypatch)
    sign_in(client, "carol")
    page = client.get(task_url(HUMAN_STEP))
    assert page.status_code == 200 and "may look but not decide" in page.text
    assert "/confirm" not in page.text
    refused = client.post(task_url(HUMAN_STEP) + "/confirm",
                          data={"csrf_token": csrf(page.text), "expected": "awaiting"})
    assert refused.status_code == 403 and "carol may look but not decide" in refused.text
    assert state(web_project, HUMAN_STEP) == "awaiting"


def test_resolve_and_skip_go_through_the_same_rules_as_the_cli(
        web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(web_project, monkeypatch)
    sign_in(client)
    token = csrf(client.get("/").text)
    resolved = client.post(task_url(FAILING) + "/resolve", data={
        "csrf_token": token, "expected": "failed", "choice": "done", "note": "called by hand"})
    assert resolved.status_code == 303
    assert state(web_project, FAILING) == "succeeded"

    page = client.get(task_url(LATER))
    assert 'action="/env/development/tasks/20260101000003/skip"' in page.text
    unexplained = client.post(task_url(LATER) + "/skip",
                              data={"csrf_token": token, "expected": "pending", "note": " "})
    assert unexplained.status_code == 409 and "say why it is skipped" in unexplained.text
    assert state(web_project, LATER) == "pending"
    skipped = client.post(task_url(LATER) + "/skip", data={
        "csrf_token": token, "expected": "pending", "note": "customer left"})
    assert skipped.status_code == 303
    assert [(a["action"], a["note"], a["username"]) for a in history(web_project, LATER)] == [
        ("skip", "customer left", "alice (via web)")]

    refused = client.post(task_url(HUMAN_STEP) + "/resolve", data={
        "csrf_token": token, "expected": "awaiting", "choice": "retry"})
    assert refused.status_code == 409 and "not cancelled or failed or interrupted" in refused.text
    assert state(web_project, HUMAN_STEP) == "awaiting"


def test_overview_puts_what_needs_a_person_first_and_the_matrix_shows_every_environment(
        web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    staging = web_project.root / "staging.sqlite3"
    web_table(web_project, '[tool.afterparty.web.environments]\nstaging = "sqlite:///staging.sqlite3"')
    assert web_project.cli("--env", "staging", "--database-url", f"sqlite:///{staging}",
                           "mark-done", "--all").code == 0
    client = console(web_project, monkeypatch)
    sign_in(client)
    page = client.get("/").text
    development = page[page.index(">development<"):page.index(">staging<")]
    assert development.index("Needs a person") < development.index("restart_search") \
        < development.index("call_partner") < development.index("All other tasks") \
        < development.index("mail_customer")
    assert "<b>1</b> awaiting" in development and "<b>1</b> failed" in development
    assert "<b>3</b> succeeded" in page[page.index(">staging<"):]

    matrix = client.get("/matrix").text
    row = matrix[matrix.index("call_partner"):matrix.index("</tr>", matrix.index("call_partner"))]
    assert f'href="/env/development/tasks/{FAILING}">failed<' in row
    assert f'href="/env/staging/tasks/{FAILING}">succeeded<' in row
    assert client.get(task_url(FAILING, "staging")).status_code == 200


def test_task_page_shows_what_show_prints(web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(web_project, monkeypatch)
    sign_in(client)
    page = client.get(task_url(FAILING)).text
    assert "Call the partner" in page and "call_partner" in page
    assert "Traceback (most recent call last)" in page and "RuntimeError: partner API said 503" in page
    assert "calling the partner API" in page  # the captured output
    attempt = history(web_project, FAILING)[0]
    assert f"{attempt['username']}@{attempt['host']}" in page and str(attempt["started_at"]) in page
    for choice in ("retry", "done", "skip"):
        assert f'name="choice" value="{choice}"' in page
    assert client.get(task_url("29990101000000")).status_code == 404
    assert client.get(task_url(FAILING, "nowhere")).status_code == 404


def test_the_api_gives_the_status_json_of_every_environment(
        web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(web_project, monkeypatch)
    assert client.get("/api/v1/status", auth=("alice", "wrong")).status_code == 401
    answer = client.get("/api/v1/status", auth=("alice", PASSWORDS["alice"]))
    assert answer.status_code == 200
    environments = answer.json()["environments"]
    cli_shape = __import__("json").loads(web_project.cli("status", "--json").out)
    assert environments == [cli_shape]


def test_a_long_tasks_progress_is_shown(sqlite_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    sqlite_project.write_task("20260101000001", "backfill", '''
        ctx.progress(450, 1000, note="invoices")
        raise RuntimeError("the database went away")''')
    assert sqlite_project.cli("run").code == 1
    client = console(sqlite_project, monkeypatch)
    sign_in(client)
    assert "reached 45% (450/1,000): invoices" in client.get("/").text
    page = client.get(task_url("20260101000001")).text
    assert '<progress max="100" value="45.0"></progress> reached 45% (450/1,000): invoices' in page


LEAKED = "hunter2-s3cret"
DSN = f"postgresql://deploy:{LEAKED}@db.internal/shop"


def test_passwords_in_output_errors_notes_and_progress_are_hidden_from_every_reader(
        sqlite_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a task prints, raises, reports and keeps, and what people note, goes through the
    command line's redactor before any page or the API shows it, to read-only users too."""
    sqlite_project.write_task("20260101000001", "copy_orders", f'''
        print("connecting to {DSN}")
        ctx.log.info("retrying with password={LEAKED}")
        ctx.checkpoint.save({{"source": "{DSN}"}})
        ctx.progress(5, 10, note="copying from {DSN}")
        raise RuntimeError("could not reach {DSN} in time")''',
        options=f'description="Copy the orders from {DSN}", atomic=False')
    sqlite_project.write_task("20260101000002", "rotate", options='description="Rotate"')
    assert sqlite_project.cli("run").code == 1
    assert sqlite_project.cli("skip", "rotate", "--reason", f"done by hand: {DSN}").code == 0
    web_table(sqlite_project, 'read_only = ["carol"]')
    client = console(sqlite_project, monkeypatch)
    for name in ("alice", "carol"):
        client.cookies.clear()
        sign_in(client, name)
        pages = {page: client.get(page) for page in (
            "/", "/matrix", task_url("20260101000001"), task_url("20260101000002"))}
        pages["/api/v1/status"] = client.get("/api/v1/status", auth=(name, PASSWORDS[name]))
        for page, answer in pages.items():
            assert answer.status_code == 200, page
            assert LEAKED not in answer.text, (name, page)
        task = pages[task_url("20260101000001")].text
        for shown in ("connecting to postgresql://deploy:***@db.internal/shop",  # output
                      "password=***",  # a log line
                      "could not reach postgresql://deploy:***@db.internal/shop",  # the error
                      "Copy the orders from postgresql://deploy:***@db.internal/shop",
                      "copying from postgresql://deploy:***@db.internal/shop"):  # progress
            assert shown in task, shown
        assert "done by hand: postgresql://deploy:***@db.internal/shop" in \
            pages[task_url("20260101000002")].text  # the note
        api = pages["/api/v1/status"].json()["environments"][0]["tasks"][0]
        assert api["checkpoint"] == {"source": "postgresql://deploy:***@db.internal/shop"}


def test_a_slow_environment_holds_up_no_page_and_no_other_environment(
        sqlite_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment whose database does not answer: every page comes within the deadline with
    the others, says so, and joins the one read under way instead of starting another; once the
    database answers the page shows it, and later shows what it last read while it is slow."""
    from afterparty.web import create_app

    set_up_tasks(sqlite_project)
    web_table(sqlite_project, '[tool.afterparty.web.environments]\nslow = "sqlite:///slow.sqlite3"')
    assert sqlite_project.cli("--env", "slow", "--database-url", "sqlite:///slow.sqlite3",
                              "mark-done", "--all").code == 0
    config = web_config(sqlite_project, monkeypatch)
    config.deadline = 0.5
    answers, opened = threading.Event(), []

    def slow_database(settings: Settings, connect_timeout: float) -> Session:
        opened.append(settings.environment)
        answers.wait(60)
        return Session(settings, connect_timeout)

    config.framework_sessions["slow"] = slow_database
    client = TestClient(create_app(config), base_url="http://localhost", follow_redirects=False)
    sign_in(client)
    try:
        for page in ("/", "/matrix", "/api/v1/status", "/"):
            started = time.monotonic()
            shown = client.get(page).text
            assert time.monotonic() - started < 3, page  # the deadline, not the database
            assert "restart_search" in shown and "no answer within 0.5 s" in shown, page
        assert opened == ["slow"]  # one read, joined by every page
    finally:
        answers.set()

    def slow_shown() -> bool:
        page = client.get("/").text
        return "<b>3</b> succeeded" in page[page.index(">slow<"):]
    wait_until(slow_shown, "the slow environment shown once it answered")

    answers.clear()
    try:
        page = client.get("/").text
        slow = page[page.index(">slow<"):]
        assert "no answer within 0.5 s: as read at" in slow and "<b>3</b> succeeded" in slow
    finally:
        answers.set()


def test_the_console_names_its_own_forms_and_hints_the_command_of_each_environment(
        web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step awaiting a person says so above the Confirm button, not which command to type;
    a hint on another environment's pages names that environment and its database; on a
    narrow screen the matrix says the other environments are to the side."""
    monkeypatch.setenv("STAGING_URL", "sqlite:///staging.sqlite3")
    web_table(web_project, '[tool.afterparty.web.environments]\nstaging = "$STAGING_URL"\n'
                           'audit = "postgresql://deploy:s3cret@db.internal/shop"')
    client = console(web_project, monkeypatch)
    sign_in(client)
    for page in (client.get("/").text, client.get(task_url(HUMAN_STEP)).text):
        assert "afterparty confirm" not in page and "awaits confirmation by a person" in page
    task = client.get(task_url(HUMAN_STEP)).text
    assert task.index("awaits confirmation by a person") < task.index("Confirm it is done")
    matrix = client.get("/matrix").text
    assert "3 environments side by side (development, staging, audit): swipe the table " \
           "sideways to see them all." in matrix

    environments = web_config(web_project, monkeypatch).environments
    assert environments["development"].command == "afterparty"
    assert environments["staging"].command == 'afterparty --env staging --database-url "$STAGING_URL"'
    assert environments["audit"].command == (
        "afterparty --env audit --database-url 'postgresql://deploy:***@db.internal/shop'")


def test_the_history_says_who_did_what_across_tasks_and_environments(
        web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run and decision of every environment, newest first, with who, when, what and the
    note; filtered by environment, person (any part of the name, any case) and task; paged."""
    from afterparty.web import pages

    web_table(web_project, '[tool.afterparty.web.environments]\nstaging = "sqlite:///staging.sqlite3"')
    staging = ("--env", "staging", "--database-url", f"sqlite:///{web_project.root / 'staging.sqlite3'}")
    assert web_project.cli(*staging, "mark-done", "--all").code == 0
    client = console(web_project, monkeypatch)
    sign_in(client, "alice")
    token = csrf(client.get("/").text)
    assert client.post(task_url(HUMAN_STEP) + "/confirm", data={
        "csrf_token": token, "expected": "awaiting", "note": "restarted 3 nodes"}).status_code == 303
    client.cookies.clear()
    sign_in(client, "carol")
    token = csrf(client.get("/").text)
    assert client.post(task_url(FAILING) + "/resolve", data={
        "csrf_token": token, "expected": "failed", "choice": "skip",
        "note": "the partner does it"}).status_code == 303

    def rows(query: str = "") -> list[str]:
        page = client.get("/history" + query)
        assert page.status_code == 200
        body = page.text[page.text.index("<tbody>"):page.text.index("</tbody>")]
        return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in body.split("<tr>")[1:]]

    newest = rows()
    assert len(newest) == 7
    assert "development call_partner 20260101000002 resolve --skip skipped carol (via web) @" in newest[0]
    assert newest[0].endswith("the partner does it")
    assert "development restart_search 20260101000001 confirm succeeded alice (via web) @" in newest[1]
    assert newest[1].endswith("restarted 3 nodes")
    assert all(" staging " in row and "mark-done succeeded" in row for row in newest[2:5])
    assert all(" development " in row and " run " in row for row in newest[5:])

    assert len(rows("?person=ALICE")) == 1 and "restarted 3 nodes" in rows("?person=ALICE")[0]
    assert [row.split()[5] for row in rows("?task=call_partner")] == ["resolve", "mark-done", "run"]
    assert len(rows(f"?task={FAILING}&env=development")) == 2
    assert len(rows("?env=staging")) == 3
    assert rows("?person=nobody") == ["Nothing matches."]
    assert client.get("/history?env=nowhere").status_code == 404

    monkeypatch.setattr(pages, "HISTORY_PAGE", 3)
    first, second, third = rows(), rows("?page=2"), rows("?page=3")
    assert first + second + third == newest
    assert 'rel="next" href="/history?page=2"' in client.get("/history").text
    assert 'rel="next"' not in client.get("/history?page=3").text
    older = client.get("/history?env=staging&page=2").text
    assert 'rel="prev" href="/history?env=staging&amp;page=1"' in older


def test_a_running_task_comes_first_with_its_progress_and_the_page_follows_it(
        sqlite_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(sqlite_project, monkeypatch)
    sign_in(client)
    runner = start_backfill(sqlite_project)
    try:
        wait_until(lambda: "/s, about" in client.get("/").text, "the backfill's rate on the overview")
        page = client.get("/").text
        assert page.index("Under way") < page.index("backfill_invoices") \
            < page.index("Needs a person") < page.index("restart_search")
        item = page[page.index("backfill_invoices"):page.index("</li>", page.index("backfill_invoices"))]
        assert re.search(r'<progress max="100" value="[0-9.]+">', item)
        assert re.search(r"\d+% \([\d,]+/100,000\), [\d,.]+/s, about [\d.]+ (s|min|h) left: copying",
                         item), item
        assert 'class="badge s-running">running<' in page
        for shown in (page, client.get("/matrix").text, client.get(task_url(BACKFILL)).text):
            assert '<main data-refresh="3">' in shown and "/static/console.js" in shown
        assert "<progress" in client.get(task_url(BACKFILL)).text

        script = client.get("/static/console.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        policy = client.get("/").headers["content-security-policy"]
        assert "script-src 'self';" in policy and "unsafe" not in policy

        for phase in ("copying", "checking"):
            (sqlite_project.root / phase).touch()
        assert runner.wait(timeout=60) == 0, runner.communicate()
    finally:
        stop(runner)
    page = client.get("/").text
    assert "data-refresh" not in page and "Under way" not in page
    assert "data-refresh" not in client.get(task_url(BACKFILL)).text


def test_a_run_that_is_gone_says_so(sqlite_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(sqlite_project, monkeypatch)
    sign_in(client)
    runner = start_backfill(sqlite_project)
    try:
        wait_until(lambda: "backfill_invoices" in client.get("/").text.partition("Under way")[2],
                   "the backfill running")
        runner.kill()  # as the OOM killer or a lost machine would
        runner.wait(timeout=30)
    finally:
        stop(runner)
    page = client.get("/").text
    item = page[page.index("backfill_invoices"):page.index("</li>", page.index("backfill_invoices"))]
    assert page.index("Under way") < page.index("backfill_invoices")
    assert 'class="badge s-gone"' in page and "its runner is gone (" in item
    assert "data-refresh" not in page  # nothing moves any more
    task = client.get(task_url(BACKFILL)).text
    assert "its runner is gone (" in task and "data-refresh" not in task
    assert 'class="badge big s-gone">gone<' in task


def test_a_paused_backfill_waits_among_what_needs_a_person(sqlite_project: Project,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(sqlite_project, monkeypatch)
    sign_in(client)
    runner = start_backfill(sqlite_project)
    try:
        wait_until(lambda: "backfill_invoices" in client.get("/").text.partition("Under way")[2],
                   "the backfill running")
        paused = sqlite_project.cli("pause", BACKFILL, "--note", "the reports are slow")
        assert paused.code == 0, paused.both
        assert runner.wait(timeout=60) == 0, runner.communicate()
    finally:
        stop(runner)
    page = client.get("/").text
    assert "Under way" not in page and "data-refresh" not in page
    assert page.index("Needs a person") < page.index("restart_search") \
        < page.index("backfill_invoices")
    assert "All other tasks" not in page  # both wait for a person: to confirm, to resume
    assert 'class="badge s-paused">paused<' in page
    last = client.get("/history").text
    assert "the reports are slow" in last


def test_a_person_pauses_resumes_and_cancels_from_the_console(sqlite_project: Project,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The task page of a running backfill offers pause and cancel (the table's decisions for a
    running task): pausing it there stops it at its next report while the deploy still holds the
    lock; the paused task offers resume, which makes it pending; the history says who asked."""
    client = console(sqlite_project, monkeypatch)
    sign_in(client)
    runner = start_backfill(sqlite_project)
    try:
        wait_until(lambda: state(sqlite_project, BACKFILL) == "running", "the backfill running")
        page = client.get(task_url(BACKFILL)).text
        assert "/pause" in page and "/cancel" in page and "/resume" not in page
        paused = client.post(task_url(BACKFILL) + "/pause", data={
            "csrf_token": csrf(page), "expected": "running", "note": "month-end reports"})
        assert paused.status_code == 303, paused.text
        assert runner.wait(timeout=60) == 0, runner.communicate()
    finally:
        stop(runner)
    assert state(sqlite_project, BACKFILL) == "paused"
    page = client.get(task_url(BACKFILL)).text
    assert "/resume" in page and "/cancel" in page and "/pause" not in page
    forged = client.post(task_url(BACKFILL) + "/pause", data={
        "csrf_token": csrf(page), "expected": "paused", "note": "again"})
    assert forged.status_code == 409 and state(sqlite_project, BACKFILL) == "paused"
    resumed = client.post(task_url(BACKFILL) + "/resume", data={
        "csrf_token": csrf(page), "expected": "paused", "note": "reports done"})
    assert resumed.status_code == 303, resumed.text
    assert state(sqlite_project, BACKFILL) == "pending"
    last = client.get("/history").text
    assert "month-end reports" in last and "reports done" in last and "alice (via web)" in last


def test_an_environment_s_releases_and_the_plan_to_roll_one_back(sqlite_project: Project,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Each release the environment has seen, newest first, with the tasks that ran in it; the
    plan of rolling one back is a click away, and changes nothing."""
    project = sqlite_project
    project.write_task("20260101000001", "first_chore", "pass")
    assert project.cli("run", extra_env={"AFTERPARTY_RELEASE": "r1"}).code == 0
    project.write_task("20260101000002", "turn_on_search", "pass", header="", options=(
        'description="turn on search"'))
    with open(project.tasks_dir / "20260101000002_turn_on_search.py", "a") as task_file:
        task_file.write("\n\n@run.undo\ndef turn_off(ctx):\n    pass\n")
    assert project.cli("run", extra_env={"AFTERPARTY_RELEASE": "r2"}).code == 0
    client = console(project, monkeypatch)
    sign_in(client)

    page = client.get("/env/development/releases").text
    assert page.index("r2") < page.index("r1")
    assert "turn_on_search" in page and "first_chore" in page
    plan = client.get("/env/development/releases/r2").text
    assert "would undo 20260101000002_turn_on_search (succeeded)" in plan
    assert "afterparty rollback --release r2" in plan
    assert state(project, "20260101000002") == "succeeded"  # a plan changes nothing
    assert client.get("/env/development/releases/r9").status_code == 404


def test_a_long_history_overview_lists_the_newest_tasks_and_counts_every_one(
        sqlite_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from afterparty.web.environments import OVERVIEW_OTHERS

    done = OVERVIEW_OTHERS + 10
    for number in range(done):
        sqlite_project.write_task(f"2026020100{number:04d}", f"chore_{number:03d}")
    assert sqlite_project.cli("mark-done", "--all").code == 0
    sqlite_project.write_task(FAILING, "call_partner", 'raise RuntimeError("partner API said 503")')
    assert sqlite_project.cli("run").code == 1
    client = console(sqlite_project, monkeypatch)
    sign_in(client)
    page = client.get("/").text
    assert f"<b>{done}</b> succeeded" in page and "<b>1</b> failed" in page
    assert page.index("Needs a person") < page.index("call_partner") < page.index("All other tasks")
    listed = re.findall(r'<span class="task-name">(chore_\d+)</span>', page)
    assert listed == [f"chore_{number:03d}" for number in range(10, done)]  # the newest, in order
    assert 'and 10 older tasks: every task is on the <a href="/matrix">matrix</a>' in page
    assert "chore_000" in client.get("/matrix").text

    # An overview that joins the read of every row under way for the matrix lists the same.
    from afterparty.web.environments import overview_rows, read_environment

    joined = overview_rows(read_environment(web_config(sqlite_project, monkeypatch), "development"))
    assert [row.name for row in joined.the_rest] == listed and joined.older == 10
