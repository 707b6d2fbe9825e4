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

    def cli(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "afterparty", *args], cwd=root, env=env, check=False,
                       capture_output=True)

    cli("run", "--no-input")  # development: the human step awaits
    cli("confirm", "restart_search_cluster", "--note", "restarted all 3 nodes, cluster green")
    for name in ("staging", "production"):
        cli("--env", name, "--database-url", f"sqlite:///{name}.sqlite3", "run", "--no-input")
    cli("--env", "staging", "--database-url", "sqlite:///staging.sqlite3", "confirm",
        "restart_search_cluster", "--note", "restarted 3 nodes at 14:05")
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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "shop"
        env = make_project(root)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "afterparty", "web", "--port", str(port)],
                                  cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"{base}/login", timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("afterparty web did not start") from None
                    time.sleep(0.1)
            for width, height, shots in ((1280, 800, ("overview", "matrix", "task")), (390, 844, ("phone",))):
                driver = browser(width, height)
                try:
                    driver.get(f"{base}/login")
                    driver.find_element(By.NAME, "username").send_keys("alice")
                    driver.find_element(By.NAME, "password").send_keys("correct horse")
                    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
                    pages = {"overview": "/", "phone": "/", "matrix": "/matrix",
                             "task": "/env/production/tasks/20261121100000"}
                    for shot in shots:
                        driver.get(base + pages[shot])
                        full_page(driver, width, HERE / f"web-{shot}.png")
                finally:
                    driver.quit()
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
