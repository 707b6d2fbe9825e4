"""Notifications through Apprise to real local transports: an HTTP receiver and an SMTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from conftest import Project


class Receiver:
    """An HTTP server collecting what Apprise's json:// posts to it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        received = self.messages

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[str]:
        return [m["message"] for m in self.messages]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ctx_notify_reaches_a_webhook(sqlite_project: Project, receiver: Receiver) -> None:
    sqlite_project.write_task("20260101000001", "tell_support",
                              'ctx.notify("Issue 111 is fixed in %s" % ctx.release, title="Fixed")')
    result = sqlite_project.cli("run", extra_env={"AFTERPARTY_NOTIFY": receiver.url,
                                                  "AFTERPARTY_RELEASE": "v42"})
    assert result.code == 0, result.both
    assert receiver.messages[0]["message"] == "Issue 111 is fixed in v42"
    assert receiver.messages[0]["title"] == "Fixed"


def test_mail_reaches_an_smtp_server(sqlite_project: Project) -> None:
    from aiosmtpd.controller import Controller

    mails: list[tuple[str, list[str], str]] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            mails.append((envelope.mail_from, envelope.rcpt_tos, envelope.content.decode()))
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        sqlite_project.write_task("20260101000001", "mail_ops", 'ctx.notify("the release is out")')
        url = (f"mailto://127.0.0.1:{port}?from=afterparty@example.com&to=ops@example.com"
               "&mode=insecure")
        result = sqlite_project.cli("run", extra_env={"AFTERPARTY_NOTIFY": url})
        assert result.code == 0, result.both
    finally:
        controller.stop()
    assert mails and mails[0][1] == ["ops@example.com"]
    assert "the release is out" in mails[0][2]


def test_without_urls_the_message_goes_to_the_output(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "tell", 'ctx.notify("nobody listens")')
    result = sqlite_project.cli("run")
    assert result.code == 0
    assert "nobody listens" in sqlite_project.cli("show", "tell").out


def test_a_held_notice_no_service_accepted_is_sent_by_the_next_run(
        sqlite_project: Project, receiver: Receiver) -> None:
    """"Tell customer X" is never lost: the task's work is done, its notice stays held (and
    `verify` says so) until a service takes it."""
    sqlite_project.write_task("20260101000001", "tell", 'ctx.notify("issue 111 is fixed")')
    dead = f"json://127.0.0.1:{free_port()}/hook"
    result = sqlite_project.cli("run", extra_env={"AFTERPARTY_NOTIFY": dead})
    assert result.code == 0, result.both
    assert "tell succeeded" in result.out
    assert result.err.count("notice of 20260101000001: notification not delivered: no "
                            "notification service accepted it; the next `afterparty run`") == 1
    gate = sqlite_project.cli("verify")
    assert gate.code == 6 and "notice not delivered" in gate.out, gate.both

    result = sqlite_project.cli("run", extra_env={"AFTERPARTY_NOTIFY": receiver.url})
    assert result.code == 0, result.both
    assert "no pending tasks" in result.out and "sent 1 held notice(s)" in result.out
    assert receiver.bodies() == ["issue 111 is fixed"]
    assert sqlite_project.cli("verify").code == 0
    assert sqlite_project.cli("run", extra_env={"AFTERPARTY_NOTIFY": receiver.url}).code == 0
    assert receiver.bodies() == ["issue 111 is fixed"]


def test_a_notification_that_is_not_required_only_warns(sqlite_project: Project,
                                                         receiver: Receiver) -> None:
    sqlite_project.write_task("20260101000001", "tell",
                              'ctx.notify("into the void", required=False)')
    dead = f"json://127.0.0.1:{free_port()}/hook"
    result = sqlite_project.cli("run", extra_env={"AFTERPARTY_NOTIFY": dead})
    assert result.code == 0, result.both
    assert "tell succeeded" in result.out and "not delivered" in result.err
    assert sqlite_project.cli("verify").code == 0  # given up: nothing is left to send
    assert sqlite_project.cli("run", extra_env={"AFTERPARTY_NOTIFY": receiver.url}).code == 0
    assert receiver.bodies() == []


def test_a_notice_sent_now_that_no_service_accepted_fails_the_task(sqlite_project: Project,
                                                                   receiver: Receiver) -> None:
    """``now=True`` keeps the immediate send: a message that must go out as the body runs."""
    sqlite_project.write_task("20260101000001", "tell", 'ctx.notify("starting", now=True)')
    dead = f"json://127.0.0.1:{free_port()}/hook"
    result = sqlite_project.cli("run", extra_env={"AFTERPARTY_NOTIFY": dead})
    assert result.code == 1, result.both
    assert "no notification service accepted it" in result.out
    assert sqlite_project.query("SELECT state FROM afterparty_tasks") == [("failed",)]
    assert sqlite_project.cli("run", extra_env={"AFTERPARTY_NOTIFY": receiver.url}).code == 0
    assert receiver.bodies() == ["starting"]


def test_the_runner_reports_failures_human_steps_and_summaries(
        sqlite_project: Project, receiver: Receiver) -> None:
    env = {"AFTERPARTY_NOTIFY": receiver.url, "AFTERPARTY_ENV": "production",
           "AFTERPARTY_NOTIFY_SUMMARY": "true"}
    sqlite_project.write_task("20260101000001", "step", "return 'Rotate the API key'",
                              options='manual=True, owner="ops"')
    sqlite_project.write_task("20260101000002", "breaks", "raise RuntimeError('kaput')")
    result = sqlite_project.cli("run", "--keep-going", extra_env=env)
    assert result.code == 1
    bodies = receiver.bodies()
    assert any("Rotate the API key" in b and "afterparty confirm 20260101000001" in b for b in bodies)
    assert any("breaks failed in production" in b and "RuntimeError: kaput" in b for b in bodies)
    assert any(b.startswith("afterparty run in production") and "breaks: failed" in b for b in bodies)

    count = len(receiver.messages)
    assert sqlite_project.cli("run", "20260101000001", extra_env=env).code == 0  # nothing to do
    time.sleep(0.2)
    assert len(receiver.messages) == count  # a run that did nothing sends no summary


def test_a_held_task_is_notified(sqlite_project: Project, receiver: Receiver) -> None:
    import signal

    from test_concurrency import wait_for

    started = sqlite_project.root / "started"
    sqlite_project.write_task("20260101000001", "charge", f"""
        import time
        open({str(started)!r}, "w").close()
        time.sleep(60)
    """, options='on_interrupt="hold"')
    runner = sqlite_project.popen("run")
    wait_for(started)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    held = sqlite_project.cli("run", extra_env={"AFTERPARTY_NOTIFY": receiver.url})
    assert held.code == 5
    assert any("afterparty resolve 20260101000001" in b for b in receiver.bodies())


def test_notices_carry_their_kind_where_they_come_from_and_the_next_command(
        sqlite_project: Project, receiver: Receiver) -> None:
    """A chat shows a failure red and a waiting step yellow; the message says where, which
    release, on which host, what broke and what to type next; the owner stays in reminders."""
    import socket

    env = {"AFTERPARTY_NOTIFY": receiver.url, "AFTERPARTY_ENV": "production",
           "AFTERPARTY_NOTIFY_SUMMARY": "true", "AFTERPARTY_RELEASE": "v42"}
    sqlite_project.write_task("20260101000001", "step", "return 'Rotate the API key'",
                              options='manual=True, owner="ops"')
    sqlite_project.write_task("20260101000002", "breaks", "raise RuntimeError('kaput')")
    assert sqlite_project.cli("run", "--keep-going", extra_env=env).code == 1
    by_title = {m["title"]: m for m in receiver.messages}
    failed = by_title["Release task failed"]
    assert failed["type"] == "failure"
    for part in ("breaks failed in production", "release v42", f"host {socket.gethostname()}",
                 "RuntimeError: kaput", "afterparty show 20260101000002", "afterparty run"):
        assert part in failed["message"], part
    assert by_title["Release step awaits ops"]["type"] == "warning"
    assert by_title["Release tasks ran"]["type"] == "failure"

    sqlite_project.write_task("20260101000002", "breaks", "pass")
    receiver.messages.clear()
    assert sqlite_project.cli("run", extra_env=env).code == 0
    (summary,) = receiver.messages
    assert summary["type"] == "warning"  # the step still waits for a person
    assert "breaks: succeeded" in summary["message"]
    assert "step: awaits ops (afterparty confirm 20260101000001)" in summary["message"]


def test_the_summary_after_a_held_task_says_what_to_decide(sqlite_project: Project,
                                                            receiver: Receiver) -> None:
    import signal

    from conftest import wait_until

    started = sqlite_project.root / "started"
    sqlite_project.write_task("20260101000001", "charge", f"""
        import time
        open({str(started)!r}, "w").close()
        time.sleep(60)
    """, options='on_interrupt="hold"')
    runner = sqlite_project.popen("run")
    try:
        wait_until(started.exists, "the task starting")
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    env = {"AFTERPARTY_NOTIFY": receiver.url, "AFTERPARTY_NOTIFY_SUMMARY": "true"}
    assert sqlite_project.cli("run", extra_env=env).code == 5
    by_title = {m["title"]: m for m in receiver.messages}
    assert by_title["Release task held"]["type"] == "warning"
    summary = by_title["Release tasks ran"]
    assert summary["type"] == "warning"
    assert "afterparty resolve 20260101000001 --retry" in summary["message"]


def test_notices_link_to_the_task_page_in_the_web_console(sqlite_project: Project,
                                                          receiver: Receiver) -> None:
    """With AFTERPARTY_WEB_URL, the failure, the waiting step and the summary carry the link to
    the task's page (environment and version quoted); the task's own ctx.notify does not."""
    env = {"AFTERPARTY_NOTIFY": receiver.url, "AFTERPARTY_ENV": "eu west/prod",
           "AFTERPARTY_NOTIFY_SUMMARY": "true",
           "AFTERPARTY_WEB_URL": "https://ops.example.com/afterparty/"}
    sqlite_project.write_task("20260101000001", "step", "return 'Rotate the API key'",
                              options='manual=True, owner="ops"')
    sqlite_project.write_task("20260101000002", "breaks",
                              "ctx.notify('about to break', now=True)\nraise RuntimeError('kaput')")
    assert sqlite_project.cli("run", "--keep-going", extra_env=env).code == 1
    page = "https://ops.example.com/afterparty/env/eu%20west%2Fprod/tasks/"
    by_title = {m["title"]: m["message"] for m in receiver.messages}
    assert f"afterparty show 20260101000002 or {page}20260101000002\n" in by_title["Release task failed"]
    assert (f"afterparty confirm 20260101000001 or {page}20260101000001"
            in by_title["Release step awaits ops"])
    summary = by_title["Release tasks ran"]
    assert f"breaks: failed {page}20260101000002" in summary
    assert f"(afterparty confirm 20260101000001) {page}20260101000001" in summary
    assert "about to break" in receiver.bodies()  # the task's own message, as it wrote it

    receiver.messages.clear()
    del env["AFTERPARTY_WEB_URL"]
    sqlite_project.write_task("20260101000002", "breaks", "raise RuntimeError('kaput')")
    assert sqlite_project.cli("run", extra_env=env).code == 1
    assert receiver.messages and not any("/tasks/" in b for b in receiver.bodies())


def test_the_held_notice_links_to_the_task_page(sqlite_project: Project, receiver: Receiver) -> None:
    import signal

    from conftest import wait_until

    started = sqlite_project.root / "started"
    sqlite_project.write_task("20260101000001", "charge", f"""
        import time
        open({str(started)!r}, "w").close()
        time.sleep(60)
    """, options='on_interrupt="hold"')
    runner = sqlite_project.popen("run")
    try:
        wait_until(started.exists, "the task starting")
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    env = {"AFTERPARTY_NOTIFY": receiver.url, "AFTERPARTY_NOTIFY_SUMMARY": "true",
           "AFTERPARTY_ENV": "production", "AFTERPARTY_WEB_URL": "http://127.0.0.1:8765"}
    assert sqlite_project.cli("run", extra_env=env).code == 5
    by_title = {m["title"]: m["message"] for m in receiver.messages}
    link = "http://127.0.0.1:8765/env/production/tasks/20260101000001"
    assert by_title["Release task held"].endswith("`--skip`\n" + link)
    assert by_title["Release tasks ran"].endswith(f"`--skip` {link}")
