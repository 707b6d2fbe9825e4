"""Make the manual's screenshots of the web console: a demo project with three environments,
real `afterparty run`s, `afterparty web` on a free port, and Debian's chromium through Selenium.

    python docs/images/make_screenshots.py        # writes docs/images/web-*.png
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

import bcrypt
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

HERE = Path(__file__).resolve().parent
TASKS = {
    "20261120090000_notify_support_issue_111": '''
        @task(description="Tell customer service that issue 111 is fixed")
        def run(ctx):
            ctx.log.info("notified #support about issue 111")
    ''',
    "20261121100000_restart_search_cluster": '''
        @task(description="Restart the search cluster after the mapping change", manual=True, owner="ops")
        def run(ctx):
            """
            1. Drain the search nodes one at a time in the ops console.
            2. Restart each node and wait until the cluster is green.
            3. Confirm here with the number of nodes restarted.
            """
    ''',
    "20261122143000_backfill_invoice_totals": '''
        @task(description="Backfill invoice totals for the new reports")
        def run(ctx):
            ctx.log.info("backfilled 18,204 invoices")
    ''',
    "20261124080000_sync_partner_catalog": '''
        @task(description="Push the new catalog to the partner API")
        def run(ctx):
            ctx.log.info("pushing 412 products")
            if ctx.env == "production":
                raise RuntimeError("partner API answered 503 Service Unavailable")
    ''',
    "20261125120000_email_customer_bug_fixed": '''
        @task(description="Tell ACME their export bug is fixed")
        def run(ctx):
            ctx.log.info("mail sent to acme@example.com")
    ''',
}
# Written after the first runs, and run in staging while the screenshots are taken.
REINDEX = ("20261126150000_reindex_search_documents", '''
    import os
    import time


    @task(description="Reindex every search document for the new mapping", atomic=False)
    def run(ctx):
        done = 530_000  # where the previous attempt's checkpoint left it
        while not os.path.exists("stop-reindex"):
            done = min(done + 1_700, 1_240_000)
            ctx.progress(done, 1_240_000, note="documents reindexed")
            time.sleep(0.2)
''')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_project(root: Path) -> dict[str, str]:
    """The demo project and the environment variables `afterparty web` needs."""
    (root / "release_tasks").mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent("""\
        [project]
        name = "shop"

        [tool.afterparty]
        database_url = "sqlite:///development.sqlite3"

        [tool.afterparty.web.environments]
        staging = "sqlite:///staging.sqlite3"
        production = "sqlite:///production.sqlite3"
        """))
    for name, body in TASKS.items():
        source = "from afterparty import task\n\n\n" + textwrap.dedent(body).strip() + "\n"
        (root / "release_tasks" / f"{name}.py").write_text(source)
    hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=5)).decode()
    (root / "users.htpasswd").write_text(f"alice:{hashed}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERPARTY_")}
    env.update(AFTERPARTY_WEB_HTPASSWD=str(root / "users.htpasswd"),
               AFTERPARTY_WEB_SECRET="screenshots-only-secret-0123456789", AFTERPARTY_RELEASE="v2.14.0")

    def cli(who: str, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "afterparty", *args], cwd=root, check=False,
                       env={**env, "LOGNAME": who, "USER": who}, capture_output=True)

    staging = ("--env", "staging", "--database-url", "sqlite:///staging.sqlite3")
    cli("deploy", "run", "--no-input")  # development: the human step awaits
    cli("maria", "confirm", "restart_search_cluster", "--note", "restarted all 3 nodes, cluster green")
    cli("sam", *staging, "skip", "email_customer_bug_fixed", "--reason", "ACME has no staging")
    for name in ("staging", "production"):
        cli("deploy", "--env", name, "--database-url", f"sqlite:///{name}.sqlite3", "run", "--no-input")
    cli("sam", *staging, "confirm", "restart_search_cluster", "--note", "restarted 3 nodes at 14:05")
    name, body = REINDEX
    source = "from afterparty import task\n" + textwrap.dedent(body).rstrip() + "\n"
    (root / "release_tasks" / f"{name}.py").write_text(source)
    return env


def browser(width: int, height: int) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def full_page(driver: webdriver.Chrome, width: int, path: Path) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(int(height) + 120, 4000))
    driver.save_screenshot(str(path))
    print(f"wrote {path.relative_to(HERE.parent.parent)}")


# Screenshot -> the console's page, at a desk and on a phone.
DESK = {"overview": "/", "matrix": "/matrix", "task": "/env/production/tasks/20261121100000",
        "running": "/env/staging/tasks/20261126150000", "history": "/history"}
PHONE = {"phone": "/", "phone-matrix": "/matrix"}


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within 30 s")
        time.sleep(0.1)


def shows_time_left(driver: webdriver.Chrome) -> bool:
    return "left" in driver.find_element(By.TAG_NAME, "main").text


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
        return True
    except OSError:
        return False


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "shop"
        env = make_project(root)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "afterparty", "web", "--port", str(port)],
                                  cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The reindex runs in staging while the screenshots are taken.
        reindex = subprocess.Popen([sys.executable, "-m", "afterparty", "--env", "staging",
                                    "--database-url", "sqlite:///staging.sqlite3", "run"],
                                   cwd=root, env={**env, "LOGNAME": "deploy", "USER": "deploy"},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: answers(f"{base}/login") or server.poll() is not None, "afterparty web starting")
            for width, height, shots in ((1280, 800, DESK), (390, 844, PHONE)):
                driver = browser(width, height)
                try:
                    driver.get(f"{base}/login")
                    driver.find_element(By.NAME, "username").send_keys("alice")
                    driver.find_element(By.NAME, "password").send_keys("correct horse")
                    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
                    for shot, page in shots.items():
                        driver.set_window_size(width, height)
                        driver.get(base + page)
                        if shot in ("overview", "running", "phone"):  # once its time left is known
                            wait_for(partial(shows_time_left, driver), "the reindex's time left")
                        full_page(driver, width, HERE / f"web-{shot}.png")
                finally:
                    driver.quit()
        finally:
            (root / "stop-reindex").touch()
            reindex.wait(timeout=60)
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
