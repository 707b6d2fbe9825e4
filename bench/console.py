"""Benchmark: the server time of the console's overview page, three environments of N tasks.

    python bench/console.py [--quick] [--tasks N] [--requests K]

Builds a project of N task files (bench/run.py's) and three SQLite environments (production,
staging and qa: the usual one and two of ``[tool.afterparty.web.environments]``), every task
recorded done in each by ``afterparty mark-done --all``. Then builds the console app in this
process as ``afterparty web --no-auth`` does and requests the overview page straight through
ASGI (no network, no client library): a request's server time runs from the call of the app
to its last byte of response. One warm-up request, then K; prints the median and whether it
is within the target (300 ms at N = 10,000). ``--quick``: N = 100, to check that it works (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import clean_env, script, write_afterparty_tasks  # bench/run.py

ENVIRONMENTS = ("production", "staging", "qa")
TARGET_MS = 300


def build_project(root: Path, n: int) -> Path:
    """N task files and three environments, each with every task recorded done."""
    project = write_afterparty_tasks(root, n)
    urls = {name: f"sqlite:///{root / name}.sqlite3" for name in ENVIRONMENTS}
    usual, *others = ENVIRONMENTS
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "app"\n\n[tool.afterparty]\nenvironment = "{usual}"\n'
        f'database_url = "{urls[usual]}"\n\n[tool.afterparty.web.environments]\n'
        + "".join(f'{name} = "{urls[name]}"\n' for name in others))
    marking = [subprocess.Popen([*script("afterparty"), "--env", name, "--database-url", url,
                                 "mark-done", "--all"], cwd=project, env=clean_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for name, url in urls.items()]
    for process in marking:
        _, errors = process.communicate()
        if process.returncode:
            raise SystemExit(f"mark-done --all exited {process.returncode}: {errors[-2000:]}")
    return project


def console_app(project: Path) -> Any:
    """The console of the project, as ``afterparty web --no-auth`` builds it."""
    for name in [name for name in os.environ if name.startswith("AFTERPARTY_")]:
        del os.environ[name]
    os.environ.pop("DATABASE_URL", None)
    from afterparty.config import load_settings
    from afterparty.web import WebConfig, create_app

    return create_app(WebConfig.load(load_settings(cwd=str(project)), no_auth=True))


async def get(app: Any, path: str) -> tuple[int, str, float]:
    """One GET through ASGI: the status, the page and the server time in seconds."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000), "server": ("localhost", 8000),
    }
    status: list[int] = []
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    started = time.perf_counter()
    await app(scope, receive, send)
    return status[0], b"".join(body).decode(), time.perf_counter() - started


def check_page(status: int, page: str, n: int) -> None:
    """The overview shows every environment with its N tasks done: nothing late, no error."""
    if status != 200:
        raise SystemExit(f"the overview answered {status}:\n{page[-2000:]}")
    counted = re.findall(r'<span class="count s-succeeded"><b>(\d+)</b>', page)
    if counted != [str(n)] * len(ENVIRONMENTS) or "no answer within" in page:
        raise SystemExit(f"the overview does not show {n} succeeded tasks in each of "
                         f"{len(ENVIRONMENTS)} environments (found {counted})")


async def measure(app: Any, n: int, requests: int) -> list[float]:
    """A warm-up request, then ``requests`` ones: their server times in seconds."""
    times = []
    for number in range(requests + 1):
        status, page, seconds = await get(app, "/")
        check_page(status, page, n)
        if number:
            times.append(seconds)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 100: checks that it works (CI)")
    parser.add_argument("--tasks", type=int, metavar="N", help="tasks per environment "
                        "(default 10,000; 100 with --quick)")
    parser.add_argument("--requests", type=int, default=7, metavar="K",
                        help="counted requests after the warm-up (default 7)")
    args = parser.parse_args()
    n = args.tasks or (100 if args.quick else 10_000)
    scratch = Path(tempfile.mkdtemp(prefix="afterparty-bench-console-"))
    try:
        started = time.monotonic()
        project = build_project(scratch / "project", n)
        print(f"built {len(ENVIRONMENTS)} environments of {n:,} done tasks in "
              f"{time.monotonic() - started:.1f} s", flush=True)
        times = asyncio.run(measure(console_app(project), n, args.requests))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    median_ms = statistics.median(times) * 1000
    print(f"overview page, {len(ENVIRONMENTS)} environments x {n:,} tasks: median server time "
          f"{median_ms:.0f} ms over {len(times)} requests (min {min(times) * 1000:.0f}, "
          f"max {max(times) * 1000:.0f})")
    verdict = "met" if median_ms <= TARGET_MS else "NOT met"
    print(f"target <= {TARGET_MS} ms at N = 10,000: {verdict}" if n == 10_000
          else f"target <= {TARGET_MS} ms applies at N = 10,000 (measured at N = {n:,})")


if __name__ == "__main__":
    main()
