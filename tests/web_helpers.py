"""The web console under test: a project with tasks really run by the CLI, its users, and a
browser-like client (Starlette's test client) that signs in and sends forms as a page would."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import httpx
import pytest

with warnings.catch_warnings():  # Starlette asks for httpx2, the successor of the httpx it still uses
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from afterparty.web import WebConfig
from conftest import Project, stop, wait_until

SECRET = "test-secret-0123456789abcdef-0123456789"
PASSWORDS = {"alice": "correct horse", "carol": "battery staple"}
HUMAN_STEP = "20260101000001"
FAILING = "20260101000002"
LATER = "20260101000003"
BACKFILL = "20260101000005"


def write_users(path: Path) -> Path:
    lines = [f"{name}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}"
             for name, pw in PASSWORDS.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def web_env(project: Project) -> dict[str, str]:
    """The variables `afterparty web` is started with (the users file is written once)."""
    users = project.root / "users.htpasswd"
    if not users.exists():
        write_users(users)
    return {"AFTERPARTY_WEB_HTPASSWD": str(users), "AFTERPARTY_WEB_SECRET": SECRET}


def set_up_tasks(project: Project) -> None:
    """A human step left awaiting, a task that fails and one that waits behind it: run for real."""
    project.write_task(HUMAN_STEP, "restart_search", '''
        """
        1. Restart every search node.
        2. Confirm with how many.
        """''', options='description="Restart the search cluster", manual=True')
    project.write_task(FAILING, "call_partner", '''
        ctx.log.info("calling the partner API")
        raise RuntimeError("partner API said 503")''', options='description="Call the partner"')
    project.write_task(LATER, "mail_customer", options='description="Mail the customer"')
    ran = project.cli("run", "--no-input")
    assert ran.code == 1, ran.both


def start_backfill(project: Project) -> subprocess.Popen[str]:
    """A human step left awaiting, then a backfill that reports its progress while it runs: its
    note says which phase it is in; the phase ends when the test writes a file of its name."""
    project.write_task(HUMAN_STEP, "restart_search", '"""Restart every search node."""',
                       options="manual=True")
    project.write_task(BACKFILL, "backfill_invoices", """
        done = 0
        for phase in ("copying", "checking"):
            while not os.path.exists(phase):
                done += 1
                ctx.progress(done, 100000, note=phase)
                time.sleep(0.02)""", options='description="Backfill the invoices"',
                       header="import os\nimport time")
    return project.popen("run", "--no-input")


def web_table(project: Project, table: str) -> None:
    """Add lines to [tool.afterparty.web] of the project's pyproject.toml."""
    pyproject = project.root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n[tool.afterparty.web]\n" + table + "\n")


def web_config(project: Project, monkeypatch: pytest.MonkeyPatch, no_auth: bool = False) -> WebConfig:
    """The console's settings in the project, as `afterparty web` would load them."""
    from afterparty.config import load_settings
    from afterparty.web import WebConfig

    for name, value in {**project.env, **web_env(project)}.items():
        if name.startswith("AFTERPARTY_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("AFTERPARTY_WEB_URL", raising=False)
    return WebConfig.load(load_settings(cwd=str(project.root)), no_auth=no_auth, connect_timeout=2)


def console(project: Project, monkeypatch: pytest.MonkeyPatch, no_auth: bool = False) -> TestClient:
    """The console app of the project, in this process, as `afterparty web` would build it."""
    from afterparty.web import create_app

    config = web_config(project, monkeypatch, no_auth)
    # Opened as http://localhost, one of the names a console bound to this machine answers to.
    return TestClient(create_app(config), base_url="http://localhost", follow_redirects=False)


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def sign_in(client: httpx.Client, name: str = "alice") -> None:
    """Sign in through the login form, as a browser would (the test client or a real one)."""
    form = client.get("/login")
    done = client.post("/login", data={"username": name, "password": PASSWORDS[name],
                                       "csrf_token": csrf(form.text), "next": "/"})
    assert done.status_code == 303, done.text


def task_url(version: str, environment: str = "development") -> str:
    return f"/env/{environment}/tasks/{version}"


def history(project: Project, version: str, *env_args: str) -> list[dict[str, object]]:
    shown = project.cli(*env_args, "show", version, "--json")
    assert shown.code == 0, shown.both
    return list(json.loads(shown.out)["attempts"])


def state(project: Project, version: str, *env_args: str) -> str:
    rows = json.loads(project.cli(*env_args, "status", "--json").out)["tasks"]
    return str(next(row["state"] for row in rows if row["version"] == version))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served_console(project: Project, log: Path, *args: str,
                   extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """`afterparty web ARGS` started for real on a free port of 127.0.0.1: its base URL once it
    answers; stopped when the block ends, however it ends."""
    port = free_port()
    server = project.popen_logged("web", "--port", str(port), *args, log=log,
                                  extra_env={**web_env(project), **(extra_env or {})})
    with answering(server, f"http://127.0.0.1:{port}", log) as base:
        yield base


@contextmanager
def serving(command: list[str], cwd: Path, env: dict[str, str], base: str, log: Path) -> Iterator[str]:
    """A server started for real (``manage.py afterparty web``, ``flask run``): ``base`` once
    its console answers there; stopped when the block ends, however it ends."""
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  text=True)
    with answering(server, base, log) as answered:
        yield answered


@contextmanager
def answering(server: subprocess.Popen[str], base: str, log: Path) -> Iterator[str]:
    try:
        def answers() -> bool:
            try:
                httpx.get(f"{base}/login", timeout=2)
                return True
            except httpx.TransportError:
                assert server.poll() is None, log.read_text()
                return False
        wait_until(answers, "the console answering")
        yield base
    finally:
        stop(server)
