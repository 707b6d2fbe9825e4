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


def test_a_notification_no_service_accepted_fails_the_task_until_one_does(
        sqlite_project: Project, receiver: Receiver) -> None:
    """"Tell customer X" must not be recorded done when nobody was told."""
    sqlite_project.write_task("20260101000001", "tell", 'ctx.notify("issue 111 is fixed")')
    dead = f"json://127.0.0.1:{free_port()}/hook"
    result = sqlite_project.cli("run", extra_env={"AFTERPARTY_NOTIFY": dead})
    assert result.code == 1, result.both
    assert "tell failed" in result.out and "no notification service accepted it" in result.out
    assert sqlite_project.query("SELECT state FROM afterparty_tasks") == [("failed",)]

    result = sqlite_project.cli("run", extra_env={"AFTERPARTY_NOTIFY": receiver.url})
    assert result.code == 0, result.both
    assert receiver.bodies() == ["issue 111 is fixed"]


def test_a_notification_that_is_not_required_only_warns(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "tell",
                              'ctx.notify("into the void", required=False)')
    dead = f"json://127.0.0.1:{free_port()}/hook"
    result = sqlite_project.cli("run", extra_env={"AFTERPARTY_NOTIFY": dead})
    assert result.code == 0, result.both
    assert "tell succeeded" in result.out
    assert "not delivered" in sqlite_project.cli("show", "tell").out


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
