"""The web console in a real browser: Debian's chromium, driven by Selenium through chromedriver.
A person signs in, sees the step awaiting them, confirms it with a note, and finds it in the
history; watches a backfill move on the overview; and on a phone is told the matrix goes on
to the side."""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from conftest import Project, stop, unavailable, wait_until
from web_helpers import (
    BACKFILL,
    HUMAN_STEP,
    PASSWORDS,
    free_port,
    history,
    set_up_tasks,
    start_backfill,
    state,
    web_env,
    web_table,
)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
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


@contextmanager
def signed_in(project: Project, browser: WebDriver, log: Path) -> Iterator[str]:
    """`afterparty web` served for real, and the browser signed in on its overview: its base URL."""
    port = free_port()
    server = project.popen_logged("web", "--port", str(port), log=log, extra_env=web_env(project))
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
        yield base
    finally:
        stop(server)


def text_of(browser: WebDriver, selector: str) -> str:
    """The element's text as the page shows it now; "" while the next page is loading (the
    old page's element goes stale, the new one is not there yet)."""
    try:
        return str(browser.find_element(By.CSS_SELECTOR, selector).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def test_a_person_confirms_a_step_in_the_browser(sqlite_project: Project, browser: WebDriver,
                                                 tmp_path: Path) -> None:
    set_up_tasks(sqlite_project)
    with signed_in(sqlite_project, browser, tmp_path / "web.log"):
        wait_until(lambda: "restart_search" in text_of(browser, "ul.tasks.urgent li"),
                   "the overview listing the step that needs a person")
        assert "awaiting" in text_of(browser, "ul.tasks.urgent li")
        browser.find_element(By.CSS_SELECTOR, "ul.tasks.urgent li a").click()
        wait_until(lambda: "Restart every search node." in text_of(browser, ".instructions"),
                   "the task page with the step's instructions")

        confirm = browser.find_element(By.CSS_SELECTOR, "form[action$='/confirm']")
        confirm.find_element(By.NAME, "note").send_keys("restarted all 3 nodes")
        confirm.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

        wait_until(lambda: "succeeded" in text_of(browser, ".task-head .badge"),
                   "the task page showing the new state")
        assert "awaiting -> succeeded" in text_of(browser, ".flash")
        newest = text_of(browser, "ol.history > li")
        assert "confirm" in newest and "restarted all 3 nodes" in newest
        assert "alice (via web)" in newest

        browser.find_element(By.LINK_TEXT, "History").click()
        wait_until(lambda: "Who did what" in text_of(browser, "h1"), "the history page")
        latest = text_of(browser, "table.audit tbody tr")
        for part in ("development", "restart_search", "confirm", "succeeded", "alice (via web)",
                     "restarted all 3 nodes"):
            assert part in latest, part
    assert state(sqlite_project, HUMAN_STEP) == "succeeded"
    assert history(sqlite_project, HUMAN_STEP)[-1]["username"] == "alice (via web)"


def test_the_overview_follows_a_running_backfill_without_reloading(
        sqlite_project: Project, browser: WebDriver, tmp_path: Path) -> None:
    """A person watches a backfill move: the page reads itself again while it runs (no reload:
    what the page's script keeps stays), shows its progress first, and stops once it is done."""
    runner = start_backfill(sqlite_project)
    try:
        with signed_in(sqlite_project, browser, tmp_path / "web.log"):
            browser.execute_script("window.stillThisPage = true;")
            backfill = "ul.tasks li:first-child"
            wait_until(lambda: "left: copying" in text_of(browser, backfill),
                       "the backfill's rate and time left on the overview")
            assert "backfill_invoices" in text_of(browser, backfill)
            first = browser.find_element(By.CSS_SELECTOR, f"{backfill} progress").get_attribute("value")
            (sqlite_project.root / "copying").touch()
            wait_until(lambda: "left: checking" in text_of(browser, backfill),
                       "the overview following the backfill into its next phase")
            later = browser.find_element(By.CSS_SELECTOR, f"{backfill} progress").get_attribute("value")
            assert float(str(later)) > float(str(first))
            (sqlite_project.root / "checking").touch()
            assert runner.wait(timeout=60) == 0
            wait_until(lambda: not browser.find_elements(By.CSS_SELECTOR, "main[data-refresh]"),
                       "the overview showing nothing under way any more")
            assert "Under way" not in text_of(browser, "main")
            assert browser.execute_script("return window.stillThisPage === true;")
    finally:
        stop(runner)


def test_on_a_phone_the_matrix_says_the_other_environments_are_to_the_side(
        sqlite_project: Project, browser: WebDriver, tmp_path: Path) -> None:
    set_up_tasks(sqlite_project)
    web_table(sqlite_project, '[tool.afterparty.web.environments]\n'
                              'staging = "sqlite:///staging.sqlite3"\nproduction = "sqlite:///production.sqlite3"')
    with signed_in(sqlite_project, browser, tmp_path / "web.log") as base:
        browser.get(f"{base}/matrix")
        hint = browser.find_element(By.CSS_SELECTOR, ".scroll-hint")
        assert not hint.is_displayed()  # at a desk every environment is in sight
        browser.set_window_size(390, 844)
        wait_until(lambda: hint.is_displayed(), "the hint shown at phone width")
        assert "3 environments side by side" in hint.text
        assert browser.execute_script(
            "const t = document.querySelector('.table-scroll'); return t.scrollWidth > t.clientWidth;")


def test_a_person_pauses_a_backfill_resumes_it_and_finds_who_paused_it(
        sqlite_project: Project, browser: WebDriver, tmp_path: Path) -> None:
    """The issue's story in a real browser: the backfill moves on the overview, its page pauses
    it (while the deploy that runs it holds the lock), resumes it, and the history says who."""
    runner = start_backfill(sqlite_project)
    try:
        with signed_in(sqlite_project, browser, tmp_path / "web.log"):
            backfill = "ul.tasks li:first-child"
            wait_until(lambda: "left: copying" in text_of(browser, backfill),
                       "the backfill moving on the overview")
            browser.find_element(By.CSS_SELECTOR, f"{backfill} a").click()
            wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "form[action$='/pause']"),
                       "the backfill's page offering to pause it")
            pause = browser.find_element(By.CSS_SELECTOR, "form[action$='/pause']")
            pause.find_element(By.NAME, "note").send_keys("month-end reports")
            pause.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait_until(lambda: "asked to pause" in text_of(browser, ".flash"), "the pause asked")
            assert runner.wait(timeout=60) == 0
            browser.refresh()
            wait_until(lambda: "paused" in text_of(browser, ".task-head .badge"),
                       "the page showing the backfill paused")

            resume = browser.find_element(By.CSS_SELECTOR, "form[action$='/resume']")
            resume.find_element(By.NAME, "note").send_keys("reports done")
            resume.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait_until(lambda: "paused -> pending" in text_of(browser, ".flash"), "resumed")

            browser.find_element(By.LINK_TEXT, "History").click()
            wait_until(lambda: "Who did what" in text_of(browser, "h1"), "the history page")
            rows = text_of(browser, "table.audit tbody")
            assert "pause" in rows and "month-end reports" in rows and "alice (via web)" in rows
    finally:
        stop(runner)
    assert state(sqlite_project, BACKFILL) == "pending"
