"""The web console over HTTP (Starlette's test client): pages, decisions and every refusal, on
tasks really run by the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conftest import Project, clean_env
from web_helpers import (
    FAILING,
    HUMAN_STEP,
    LATER,
    PASSWORDS,
    console,
    csrf,
    history,
    set_up_tasks,
    sign_in,
    state,
    task_url,
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
