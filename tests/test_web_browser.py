"""The web console in a real browser: Debian's chromium, driven by Selenium through chromedriver.
A person signs in, sees the step awaiting them, confirms it with a note, and finds it in the history."""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Project, stop, unavailable, wait_until
from web_helpers import HUMAN_STEP, PASSWORDS, free_port, history, set_up_tasks, state, web_env

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[object]:
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        unavailable("chromium and chromium-driver are not installed (apt-get install chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_a_person_confirms_a_step_in_the_browser(sqlite_project: Project, browser: object,
                                                 tmp_path: Path) -> None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)

    def text_of(selector: str) -> str:
        """The element's text as the page shows it now; "" while the next page is loading (the
        old page's element goes stale, the new one is not there yet)."""
        try:
            return str(browser.find_element(By.CSS_SELECTOR, selector).text)
        except (NoSuchElementException, StaleElementReferenceException):
            return ""

    set_up_tasks(sqlite_project)
    port = free_port()
    log = tmp_path / "web.log"
    server = sqlite_project.popen_logged("web", "--port", str(port), log=log,
                                         extra_env=web_env(sqlite_project))
    base = f"http://127.0.0.1:{port}"
    try:
        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/login", timeout=2):
                    return True
            except OSError:
                assert server.poll() is None, log.read_text()
                return False
        wait_until(answers, "the console answering")

        browser.get(base + "/")
        assert browser.current_url.startswith(f"{base}/login")
        browser.find_element(By.NAME, "username").send_keys("alice")
        browser.find_element(By.NAME, "password").send_keys(PASSWORDS["alice"])
        browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        wait_until(lambda: browser.current_url == f"{base}/", "the overview after signing in")

        wait_until(lambda: "restart_search" in text_of("ul.tasks.urgent li"),
                   "the overview listing the step that needs a person")
        assert "awaiting" in text_of("ul.tasks.urgent li")
        browser.find_element(By.CSS_SELECTOR, "ul.tasks.urgent li a").click()
        wait_until(lambda: "Restart every search node." in text_of(".instructions"),
                   "the task page with the step's instructions")

        confirm = browser.find_element(By.CSS_SELECTOR, "form[action$='/confirm']")
        confirm.find_element(By.NAME, "note").send_keys("restarted all 3 nodes")
        confirm.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

        wait_until(lambda: "succeeded" in text_of(".task-head .badge"),
                   "the task page showing the new state")
        assert "awaiting -> succeeded" in text_of(".flash")
        newest = text_of("ol.history > li")
        assert "confirm" in newest and "restarted all 3 nodes" in newest
        assert "alice (via web)" in newest
    finally:
        stop(server)
    assert state(sqlite_project, HUMAN_STEP) == "succeeded"
    assert history(sqlite_project, HUMAN_STEP)[-1]["username"] == "alice (via web)"
