"""The console as `afterparty web` serves it, over real HTTP: who a request comes from when
forwarding headers are sent, the host names it answers to, a decision taken while a deploy runs,
and a session cookie kept after signing out."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from conftest import Project, stop, wait_until
from web_helpers import (
    HUMAN_STEP,
    LATER,
    csrf,
    history,
    served_console,
    set_up_tasks,
    sign_in,
    state,
    task_url,
    web_table,
)


@pytest.fixture
def web_project(sqlite_project: Project) -> Project:
    set_up_tasks(sqlite_project)
    return sqlite_project


def test_x_forwarded_for_does_not_pass_for_a_trusted_proxy(web_project: Project, tmp_path: Path) -> None:
    web_table(web_project, 'proxy_user_header = "X-Forwarded-User"\ntrusted_proxies = ["10.0.0.5"]')
    forged = {"X-Forwarded-For": "10.0.0.5", "X-Forwarded-User": "mallory"}
    # Even when uvicorn is told to believe every address's X-Forwarded-For.
    with served_console(web_project, tmp_path / "web.log", extra_env={"FORWARDED_ALLOW_IPS": "*"}) as base:
        assert httpx.get(f"{base}/api/v1/status", headers=forged).status_code == 401
        page = httpx.get(f"{base}/", headers=forged)
        assert page.status_code == 303 and "/login" in page.headers["location"]


def test_a_proxy_on_the_same_host_that_sends_x_forwarded_for_signs_its_user_in(
        web_project: Project, tmp_path: Path) -> None:
    web_table(web_project, 'proxy_user_header = "X-Forwarded-User"')  # trusted: 127.0.0.1 and ::1
    sent = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-User": "alice"}
    with served_console(web_project, tmp_path / "web.log") as base:
        assert httpx.get(f"{base}/api/v1/status", headers=sent).status_code == 200
        page = httpx.get(f"{base}/", headers=sent)
        assert page.status_code == 200 and "alice" in page.text


def test_a_page_that_rebinds_its_name_to_this_machine_gets_400(web_project: Project,
                                                               tmp_path: Path) -> None:
    with served_console(web_project, tmp_path / "web.log", "--no-auth") as base:
        port = base.rsplit(":", 1)[1]
        for rebound in (f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}"):
            assert httpx.get(f"{base}/", headers={"Host": rebound}).status_code == 400
            refused = httpx.post(f"{base}/env/development/tasks/{HUMAN_STEP}/confirm",
                                 headers={"Host": rebound}, data={"expected": "awaiting"})
            assert refused.status_code == 400
        for loopback in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
            assert httpx.get(f"{base}/", headers={"Host": loopback}).status_code == 200, loopback
    assert state(web_project, HUMAN_STEP) == "awaiting"


def test_a_decision_while_a_deploy_holds_the_lock_is_refused_at_once(sqlite_project: Project,
                                                                     tmp_path: Path) -> None:
    sqlite_project.write_task("20260101000001", "long_import", """
        open("started", "w").close()
        while not os.path.exists("go"):
            time.sleep(0.05)""", header="import os\nimport time")
    sqlite_project.write_task("20260101000002", "mail_customer")
    runner = None
    with served_console(sqlite_project, tmp_path / "web.log") as base, \
            httpx.Client(base_url=base, timeout=10, follow_redirects=False) as browser:
        try:
            sign_in(browser)
            runner = sqlite_project.popen("run", "--no-input")
            wait_until(lambda: (sqlite_project.root / "started").exists() or runner.poll() is not None,
                       "the run starting its first task")
            assert runner.poll() is None, runner.communicate()
            page = browser.get(task_url("20260101000002"))
            started = time.monotonic()
            refused = browser.post(task_url("20260101000002") + "/skip", data={
                "csrf_token": csrf(page.text), "expected": "pending", "note": "not needed"})
            assert refused.status_code == 409
            assert time.monotonic() - started < 5
            assert "a deploy is running; decide when it ends" in refused.text
            assert browser.get("/api/v1/status").status_code == 200

            (sqlite_project.root / "go").touch()
            assert runner.wait(timeout=60) == 0
        finally:
            if runner is not None:
                stop(runner)
    assert state(sqlite_project, "20260101000002") == "succeeded"
    assert "skip" not in [attempt["action"] for attempt in history(sqlite_project, "20260101000002")]


def test_a_cookie_copied_before_signing_out_reads_and_decides_nothing(web_project: Project,
                                                                      tmp_path: Path) -> None:
    with served_console(web_project, tmp_path / "web.log") as base, \
            httpx.Client(base_url=base, timeout=10, follow_redirects=False) as browser:
        sign_in(browser)
        page = browser.get(task_url(LATER))
        copied, token = browser.cookies["afterparty_console"], csrf(page.text)
        assert browser.post("/logout", data={"csrf_token": token}).status_code == 303
        with httpx.Client(base_url=base, timeout=10, follow_redirects=False,
                          cookies={"afterparty_console": copied}) as copy:
            assert copy.get("/").status_code == 303
            assert copy.get(task_url(LATER)).status_code == 303
            assert copy.get("/api/v1/status").status_code == 401
            skip = copy.post(task_url(LATER) + "/skip", data={
                "csrf_token": token, "expected": "pending", "note": "after signing out"})
            assert skip.status_code == 303 and "/login" in skip.headers["location"]
    assert state(web_project, LATER) == "pending"


def test_a_database_that_never_answers_holds_up_no_page(web_project: Project, tmp_path: Path) -> None:
    """A PostgreSQL address that takes connections and never answers (a firewall dropping them,
    a frozen server): the pages and the API come within the deadline, with the other environment."""
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(64)  # connections wait in the backlog: nobody ever answers them
        port = black_hole.getsockname()[1]
        web_table(web_project, '[tool.afterparty.web.environments]\nfrozen = "$FROZEN_DATABASE_URL"')
        with served_console(web_project, tmp_path / "web.log",
                            extra_env={"FROZEN_DATABASE_URL": f"postgresql://deploy:pw@127.0.0.1:{port}/shop"}
                            ) as base, httpx.Client(base_url=base, timeout=30) as browser:
            sign_in(browser)
            for page in ("/", "/api/v1/status", "/matrix"):
                started = time.monotonic()
                answer = browser.get(page)
                assert time.monotonic() - started < 4, page  # not the 5 s connect timeout
                assert answer.status_code == 200 and "restart_search" in answer.text, page
                # Not answered yet, or (a read a page started earlier ended meanwhile) why.
                assert ("no answer within 2 s" in answer.text
                        or "connection timeout expired" in answer.text), page
