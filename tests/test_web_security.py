"""The web console's defences: headers, throttled logins, the proxy header only when trusted,
an unreachable environment, mounting under a prefix, and `afterparty web` itself (starting,
and refusing to start without authentication)."""

from __future__ import annotations

import logging
import re
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from conftest import Project, Result, stop, wait_until
from web_helpers import (
    HUMAN_STEP,
    PASSWORDS,
    SECRET,
    TestClient,
    console,
    csrf,
    free_port,
    history,
    set_up_tasks,
    sign_in,
    state,
    task_url,
    web_config,
    web_env,
    web_table,
)


@pytest.fixture
def web_project(sqlite_project: Project) -> Project:
    set_up_tasks(sqlite_project)
    return sqlite_project


def test_every_response_forbids_framing_and_outside_sources(web_project: Project,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(web_project, monkeypatch)
    for response in (client.get("/login"), client.get("/"), client.get("/api/v1/status")):
        assert response.headers["x-frame-options"] == "DENY"
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"


def test_failed_logins_are_throttled(web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(web_project, monkeypatch)
    token = csrf(client.get("/login").text)
    for _ in range(5):
        wrong = client.post("/login", data={"username": "alice", "password": "guess",
                                            "csrf_token": token})
        assert wrong.status_code == 401
    throttled = client.post("/login", data={"username": "alice", "password": PASSWORDS["alice"],
                                            "csrf_token": token})
    assert throttled.status_code == 429 and "too many failed logins" in throttled.text
    assert client.get("/").status_code == 303  # still not signed in


def test_a_login_form_without_its_token_is_refused_and_next_stays_here(web_project: Project,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(web_project, monkeypatch)
    forged = client.post("/login", data={"username": "alice", "password": PASSWORDS["alice"]})
    assert forged.status_code == 403
    assert client.get("/").status_code == 303
    elsewhere = client.post("/login", data={"username": "alice", "password": PASSWORDS["alice"],
                                            "csrf_token": csrf(client.get("/login").text),
                                            "next": "//evil.example/"})
    assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/"


def test_the_proxy_header_counts_only_when_configured_and_from_a_trusted_proxy(
        web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    header = {"X-Forwarded-User": "alice"}
    assert console(web_project, monkeypatch).get("/", headers=header).status_code == 303

    web_table(web_project, 'proxy_user_header = "X-Forwarded-User"\ntrusted_proxies = ["10.0.0.5"]')
    untrusted = console(web_project, monkeypatch)  # the test client is not 10.0.0.5
    assert untrusted.get("/", headers=header).status_code == 303

    text = (web_project.root / "pyproject.toml").read_text().replace('"10.0.0.5"', '"testclient"')
    (web_project.root / "pyproject.toml").write_text(text)
    trusted = console(web_project, monkeypatch)
    page = trusted.get(task_url(HUMAN_STEP), headers=header)
    assert page.status_code == 200 and "alice" in page.text
    done = trusted.post(task_url(HUMAN_STEP) + "/confirm", headers=header, data={
        "csrf_token": csrf(page.text), "expected": "awaiting", "note": "via the proxy"})
    assert done.status_code == 303
    assert state(web_project, HUMAN_STEP) == "succeeded"


def test_an_unreachable_environment_is_an_error_box_without_its_password(
        web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODUCTION_DATABASE_URL", "postgresql://deployer:s3cret-pw@127.0.0.1:1/shop")
    web_table(web_project, '[tool.afterparty.web.environments]\nproduction = "$PRODUCTION_DATABASE_URL"')
    client = console(web_project, monkeypatch)
    sign_in(client)
    for page in ("/", "/matrix"):
        answer = client.get(page)
        assert answer.status_code == 200
        assert "Cannot read" in answer.text and "127.0.0.1:1" in answer.text
        assert "s3cret-pw" not in answer.text
        assert "restart_search" in answer.text  # the reachable environment is still shown
    api = client.get("/api/v1/status").json()["environments"]
    assert api[1]["environment"] == "production" and "s3cret-pw" not in str(api)
    assert "cannot connect" in api[1]["error"]


def test_the_console_mounts_under_a_prefix_of_an_asgi_app(web_project: Project,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    inner = console(web_project, monkeypatch).app
    client = TestClient(Starlette(routes=[Mount("/ops/afterparty", app=inner)]),
                        base_url="http://localhost", follow_redirects=False)
    assert client.get("/ops/afterparty/").headers["location"] == "/ops/afterparty/login?next=/"
    form = client.get("/ops/afterparty/login")
    assert 'action="/ops/afterparty/login"' in form.text
    signed_in = client.post("/ops/afterparty/login", data={
        "username": "alice", "password": PASSWORDS["alice"], "csrf_token": csrf(form.text), "next": "/"})
    assert signed_in.headers["location"] == "/ops/afterparty/"
    # The cookie goes back to the console only, for 12 hours at most.
    cookie = signed_in.headers["set-cookie"].lower()
    assert "path=/ops/afterparty;" in cookie and "max-age=43200" in cookie
    page = client.get("/ops/afterparty/").text
    assert f'href="/ops/afterparty/env/development/tasks/{HUMAN_STEP}"' in page


def test_afterparty_web_serves_the_console(web_project: Project, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "web.log"
    server = web_project.popen_logged("web", "--port", str(port), log=log, extra_env=web_env(web_project))
    try:
        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as response:
                    return b'name="username"' in response.read()
            except OSError:
                assert server.poll() is None, log.read_text()
                return False
        wait_until(answers, "the console answering")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=5)
        assert refused.value.code == 401
    finally:
        stop(server)


@pytest.mark.parametrize(("args", "env", "message"), [
    (("--host", "0.0.0.0", "--no-auth"), {}, "--no-auth serves only this machine: bind to 127.0.0.1"),
    (("--host", "0.0.0.0"), {}, "the console needs users: set AFTERPARTY_WEB_HTPASSWD"),
    ((), {"AFTERPARTY_WEB_HTPASSWD": "missing.htpasswd", "AFTERPARTY_WEB_SECRET": SECRET},
     "AFTERPARTY_WEB_HTPASSWD names missing.htpasswd, which is not a file"),
    ((), {"AFTERPARTY_WEB_SECRET": ""}, "set AFTERPARTY_WEB_SECRET to a random text"),
    (("--host", "0.0.0.0"), {"AFTERPARTY_WEB_SECRET": SECRET},
     "listening on 0.0.0.0, the console needs the host names people open it by"),
    ((), {"AFTERPARTY_WEB_SECRET": "s" * 31},
     "set AFTERPARTY_WEB_SECRET to a random text of at least 32 bytes"),
    (("--env", "eu/production"), {"AFTERPARTY_WEB_SECRET": SECRET},
     "the environment name 'eu/production' may not hold '/' or '..'"),
    (("--env", ".."), {"AFTERPARTY_WEB_SECRET": SECRET}, "the environment name '..' may not hold"),
])
def test_afterparty_web_refuses_to_start_unsafely(sqlite_project: Project, args: tuple[str, ...],
                                                  env: dict[str, str], message: str) -> None:
    variables = {**web_env(sqlite_project), **env} if env else {}
    assert_refused_to_start(sqlite_project.cli("web", "--port", str(free_port()), *args,
                                               extra_env=variables, timeout=30), message)


def assert_refused_to_start(refused: Result, message: str) -> None:
    assert refused.code == 2, refused.both
    assert refused.err.startswith("afterparty: error: ") and message in refused.err
    assert len(refused.err.strip().splitlines()) == 1 and "Traceback" not in refused.err


@pytest.mark.parametrize(("users", "mode", "message"), [
    (None, 0o666, "which anyone on this machine may write: `chmod o-w"),
    ("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", 0o600, "holds no bcrypt hash"),
    ("", 0o600, "holds no bcrypt hash"),
])
def test_afterparty_web_refuses_an_htpasswd_file_it_cannot_trust(sqlite_project: Project,
                                                                  users: str | None, mode: int,
                                                                  message: str) -> None:
    variables = web_env(sqlite_project)
    path = Path(variables["AFTERPARTY_WEB_HTPASSWD"])
    if users is not None:
        path.write_text(users)
    path.chmod(mode)
    assert_refused_to_start(sqlite_project.cli("web", "--port", str(free_port()), extra_env=variables,
                                               timeout=30), message)


def test_an_environment_name_with_dots_in_the_console_table_is_refused(
        web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from afterparty.errors import ConfigError

    web_table(web_project, '[tool.afterparty.web.environments]\n"eu..production" = "sqlite:///eu.sqlite3"')
    with pytest.raises(ConfigError, match=re.escape("'eu..production' may not hold '/' or '..'")):
        web_config(web_project, monkeypatch)


def test_read_only_names_ignore_case_and_surrounding_spaces(web_project: Project,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    web_table(web_project, 'read_only = ["Carol"]\nproxy_user_header = "X-Forwarded-User"\n'
                           'trusted_proxies = ["testclient"]')
    client = console(web_project, monkeypatch)
    sign_in(client, "carol")
    for header in ({}, {"X-Forwarded-User": " CAROL "}, {"X-Forwarded-User": "carol"}):
        page = client.get(task_url(HUMAN_STEP), headers=header)
        assert "may look but not decide" in page.text, header
        refused = client.post(task_url(HUMAN_STEP) + "/confirm", headers=header,
                              data={"csrf_token": csrf(page.text), "expected": "awaiting"})
        assert refused.status_code == 403, header
    assert state(web_project, HUMAN_STEP) == "awaiting"


def test_a_password_longer_than_bcrypt_reads_gets_a_clear_message(
        web_project: Project, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    client = console(web_project, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="afterparty.web"):
        refused = client.post("/login", data={"username": "alice", "password": "é" * 40,
                                               "csrf_token": csrf(client.get("/login").text)})
    assert refused.status_code == 401 and "longer than 72 bytes" in refused.text
    assert "not a bcrypt hash" not in caplog.text


def test_the_console_mounts_into_a_wsgi_app_through_a2wsgi(web_project: Project,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from a2wsgi import ASGIMiddleware
    from flask import Flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.test import Client

    flask_app = Flask("shop")
    flask_app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        flask_app.wsgi_app, {"/afterparty": ASGIMiddleware(console(web_project, monkeypatch).app)})
    client = Client(flask_app)
    with client.get("/afterparty/") as first:
        assert first.headers["Location"] == "/afterparty/login?next=/"
    with client.get("/afterparty/login") as login:
        form = login.get_data(as_text=True)
    with client.post("/afterparty/login", data={"username": "alice", "password": PASSWORDS["alice"],
                                                "csrf_token": csrf(form), "next": "/"}) as signed_in:
        assert signed_in.headers["Location"] == "/afterparty/"
    with client.get("/afterparty/") as overview:
        assert "restart_search" in overview.get_data(as_text=True)


def test_a_user_taken_out_of_the_htpasswd_file_is_signed_out(web_project: Project,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(web_project, monkeypatch)
    sign_in(client)
    assert client.get("/").status_code == 200
    users = web_project.root / "users.htpasswd"
    users.write_text("".join(line + "\n" for line in users.read_text().splitlines()
                             if not line.startswith("alice:")) + "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    assert client.get("/").status_code == 303
    token = csrf(client.get("/login").text)
    sha1 = client.post("/login", data={"username": "bob", "password": "password", "csrf_token": token})
    assert sha1.status_code == 401  # only bcrypt hashes are accepted


def test_no_auth_on_this_machine_records_the_user_who_started_it(web_project: Project,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    client = console(web_project, monkeypatch, no_auth=True)
    page = client.get(task_url(HUMAN_STEP))
    assert page.status_code == 200 and "Sign out" not in page.text
    forged = client.post(task_url(HUMAN_STEP) + "/confirm", data={"expected": "awaiting"})
    assert forged.status_code == 403  # another site's form cannot post to a local console either
    done = client.post(task_url(HUMAN_STEP) + "/confirm",
                       data={"csrf_token": csrf(page.text), "expected": "awaiting"})
    assert done.status_code == 303
    assert history(web_project, HUMAN_STEP)[-1]["username"] == f"{getpass.getuser()} (via web)"


def test_allowed_hosts_names_the_hosts_the_console_answers_to(web_project: Project,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    web_table(web_project, 'allowed_hosts = ["ops.example.com", ".internal.example"]')
    app = console(web_project, monkeypatch).app
    for host in ("ops.example.com", "OPS.example.com:8443", "internal.example", "a.internal.example"):
        assert TestClient(app, base_url=f"http://{host}").get("/login").status_code == 200, host
    for host in ("localhost", "example.com", "evil-ops.example.com", "xinternal.example"):
        refused = TestClient(app, base_url=f"http://{host}").get("/login")
        assert refused.status_code == 400, host
        assert refused.headers["x-frame-options"] == "DENY"
    monkeypatch.setenv("AFTERPARTY_WEB_ALLOWED_HOSTS", "console.example.org")
    app = console(web_project, monkeypatch).app
    assert TestClient(app, base_url="http://console.example.org").get("/login").status_code == 200
    assert TestClient(app, base_url="http://ops.example.com").get("/login").status_code == 400


def test_a_changed_password_hash_ends_that_users_sessions(web_project: Project,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    alice, carol = console(web_project, monkeypatch), console(web_project, monkeypatch)
    sign_in(alice)
    sign_in(carol, "carol")
    users = web_project.root / "users.htpasswd"
    rehashed = bcrypt.hashpw(PASSWORDS["alice"].encode(), bcrypt.gensalt(rounds=4)).decode()
    users.write_text("".join(f"alice:{rehashed}\n" if line.startswith("alice:") else line + "\n"
                             for line in users.read_text().splitlines()))
    assert alice.get("/").status_code == 303  # even with the same password: its hash changed
    assert carol.get("/").status_code == 200
    sign_in(alice)
    assert alice.get("/").status_code == 200


def test_two_consoles_sharing_a_secret_refuse_each_others_cookies(web_project: Project,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    first = console(web_project, monkeypatch)
    login_form = first.get("/login")
    anonymous = first.cookies["afterparty_console"]
    sign_in(first)
    web_table(web_project, '[tool.afterparty.web.environments]\nstaging = "sqlite:///staging.sqlite3"')
    second = console(web_project, monkeypatch)  # the same secret, users and database
    second.cookies.set("afterparty_console", first.cookies["afterparty_console"])
    assert second.get("/").status_code == 303
    assert first.get("/").status_code == 200
    second.cookies.set("afterparty_console", anonymous)  # its form's token does not count here
    refused = second.post("/login", data={"username": "alice", "password": PASSWORDS["alice"],
                                          "csrf_token": csrf(login_form.text)})
    assert refused.status_code == 403


def test_a_signed_cookie_the_console_did_not_write_is_refused(web_project: Project,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import json

    import itsdangerous

    from afterparty.web.sessions import console_identity, cookie_serializer

    client = console(web_project, monkeypatch)
    # What another Starlette application's session middleware with the same secret writes.
    foreign = itsdangerous.TimestampSigner(SECRET).sign(base64.b64encode(json.dumps(
        {"user": "mallory", "via": "proxy", "sid": "x"}).encode())).decode()
    ours = cookie_serializer(SECRET, console_identity(web_config(web_project, monkeypatch)))
    for cookie in (foreign, ours.dumps({"user": "alice", "via": "htpasswd"}),
                   ours.dumps({"sid": "an-id-it-never-gave", "user": "alice"})):
        client.cookies.set("afterparty_console", cookie)
        assert client.get("/").status_code == 303
        assert client.get("/api/v1/status").status_code == 401


def test_a_session_ends_after_30_idle_minutes_12_hours_or_sign_out() -> None:
    from afterparty.web.sessions import SessionStore

    now = [0.0]
    store = SessionStore(clock=lambda: now[0])
    hashes = {"alice": b"$2b$04$hash"}
    active = store.start("alice", hashes["alice"])
    assert len(active) >= 43  # 256 random bits
    for _ in range(24):  # used every 29 minutes: 11 h 36 min
        now[0] += 29 * 60
        assert store.user(active, hashes.get) == "alice"
    now[0] += 29 * 60  # 12 h 5 min after signing in
    assert store.user(active, hashes.get) is None

    idle = store.start("alice", hashes["alice"])
    now[0] += 30 * 60 + 1
    assert store.user(idle, hashes.get) is None

    signed_out = store.start("alice", hashes["alice"])
    store.end(signed_out)
    assert store.user(signed_out, hashes.get) is None


def test_the_sessions_kept_are_bounded() -> None:
    from afterparty.web.sessions import SessionStore

    store = SessionStore(limit=3)
    first, *_ = [store.start(f"user{n}", None) for n in range(5)]
    assert len(store) == 3 and store.user(first, lambda name: None) is None


def from_address(client: TestClient, address: str) -> TestClient:
    """The same console, asked from another address."""
    return TestClient(client.app, base_url="http://localhost", client=(address, 50000),
                      follow_redirects=False)


def test_failed_logins_from_one_address_never_lock_another_out(web_project: Project,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(web_project, monkeypatch)
    attacker, alice = from_address(client, "203.0.113.66"), from_address(client, "198.51.100.7")
    token = csrf(attacker.get("/login").text)

    def attempt(password: str) -> int:
        return attacker.post("/login", data={"username": "alice", "password": password,
                                             "csrf_token": token}).status_code

    assert [attempt("guess") for _ in range(5)] == [401] * 5
    assert attempt(PASSWORDS["alice"]) == 429
    sign_in(alice)  # from her own address, alice is not locked out
    assert alice.get("/").status_code == 200
    assert attempt("guess") == 429  # and signing in cleared nothing of the other address's

    # X-Forwarded-For counts only from a trusted proxy: rotating it does not reset the count...
    for n in range(3):
        forged = attacker.post("/login", headers={"X-Forwarded-For": f"192.0.2.{n}"}, data={
            "username": "alice", "password": "guess", "csrf_token": token})
        assert forged.status_code == 429
    # ...and behind one (127.0.0.1, trusted by default) each person is counted by their own address.
    proxy = from_address(client, "127.0.0.1")
    token = csrf(proxy.get("/login").text)
    for n, expected in enumerate([401] * 5 + [429]):
        wrong = proxy.post("/login", headers={"X-Forwarded-For": "203.0.113.66"}, data={
            "username": "carol", "password": f"guess {n}", "csrf_token": token})
        assert wrong.status_code == expected
    right = proxy.post("/login", headers={"X-Forwarded-For": "198.51.100.7, 127.0.0.1"}, data={
        "username": "carol", "password": PASSWORDS["carol"], "csrf_token": token, "next": "/"})
    assert right.status_code == 303


def test_an_oversized_name_is_refused_before_anything_and_never_logged_whole(
        web_project: Project, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    client = console(web_project, monkeypatch)
    token = csrf(client.get("/login").text)
    huge = "mallory" * 30_000
    with caplog.at_level(logging.WARNING, logger="afterparty.web"):
        form = client.post("/login", data={"username": huge, "password": "x", "csrf_token": token})
        basic = client.get("/api/v1/status", auth=(huge, "x"))
    assert form.status_code == 401 and "wrong name or password" in form.text
    assert huge[:1000] not in form.text  # nor shown back in the form
    assert basic.status_code == 401
    assert "failed login" in caplog.text and len(caplog.text) < 2_000


def test_the_login_throttle_keeps_a_bounded_number_of_entries() -> None:
    from afterparty.web.auth import LoginThrottle

    throttle = LoginThrottle(max_entries=100)
    for n in range(1_000):
        throttle.failed(f"10.0.{n // 250}.{n % 250}", f"name{n}")
    assert len(throttle) == 100
    assert throttle.wait_needed("10.0.3.249", "name999") == 0.0  # one failure: not throttled


def test_an_unknown_name_takes_as_long_as_a_wrong_password(web_project: Project,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import statistics
    import time

    users = web_project.root / "users.htpasswd"
    users.write_text(f"alice:{bcrypt.hashpw(b'correct horse', bcrypt.gensalt(rounds=12)).decode()}\n")
    client = console(web_project, monkeypatch)
    token = csrf(client.get("/login").text)

    def seconds(name: str) -> float:
        started = time.perf_counter()
        answer = client.post("/login", data={"username": name, "password": "guess", "csrf_token": token})
        assert answer.status_code == 401
        return time.perf_counter() - started

    seconds("nobody")  # the first unknown name may pay for making the stand-in hash
    # Measured in pairs, one right after the other, so that the load of a busy machine (other
    # tests run beside this one) weighs on both sides of each ratio alike.
    ratios = [seconds(f"nobody{n}") / seconds("alice") for n in range(5)]
    assert statistics.median(ratios) >= 0.5, ratios


def test_signing_in_gives_a_new_session_id(web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(web_project, monkeypatch)
    client.get("/login")
    before = client.cookies["afterparty_console"]  # one an attacker could have planted
    sign_in(client)
    planted = from_address(client, "testclient")
    planted.cookies.set("afterparty_console", before)
    assert planted.get("/").status_code == 303
    assert client.get("/").status_code == 200



def test_the_cookie_is_secure_when_the_console_is_served_over_https(
        web_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from afterparty.config import load_settings
    from afterparty.web import WebConfig, create_app

    web_config(web_project, monkeypatch)  # the console's variables...
    monkeypatch.setenv("AFTERPARTY_WEB_URL", "https://ops.example.com/afterparty/")  # ...and its address
    config = WebConfig.load(load_settings(cwd=str(web_project.root)))
    client = TestClient(create_app(config), base_url="https://localhost", follow_redirects=False)
    assert "; secure" in client.get("/login").headers["set-cookie"].lower()


def test_task_output_errors_and_notes_are_shown_as_text(sqlite_project: Project,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    sqlite_project.write_task("20260101000001", "markup", """
        ctx.log.info("<script>alert('output')</script>")
        raise RuntimeError("<img src=x onerror=alert('error')>")""",
        options='description="<b>described</b>"')
    assert sqlite_project.cli("run").code == 1
    client = console(sqlite_project, monkeypatch)
    sign_in(client)
    page = client.get(task_url("20260101000001"))
    resolved = client.post(task_url("20260101000001") + "/resolve", data={
        "csrf_token": csrf(page.text), "expected": "failed", "choice": "skip",
        "note": "<iframe src=//evil.example></iframe>"})
    assert resolved.status_code == 303
    for shown in (client.get(task_url("20260101000001")).text, client.get("/").text):
        assert "<script>alert" not in shown and "<img src=x" not in shown
        assert "<iframe" not in shown and "<b>described" not in shown
    page = client.get(task_url("20260101000001")).text
    assert "&lt;script&gt;alert(" in page and "&lt;iframe src=//evil.example&gt;" in page


def test_another_cookie_of_the_same_name_does_not_sign_anyone_out(web_project: Project,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    client = console(web_project, monkeypatch)
    sign_in(client)
    ours = client.cookies["afterparty_console"]
    client.cookies.clear()
    # What a browser sends when an older console set one for "/": the one of the longer path first.
    stale = {"Cookie": f"afterparty_console={ours}; afterparty_console=eyJ1c2VyIjoiYWxpY2UifQ.old.sig"}
    assert client.get("/", headers=stale).status_code == 200
