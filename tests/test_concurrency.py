"""Many runners at once, runners killed mid-task, signals and a held lock: real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Project, stop, wait_until

RUNNERS = 16
TASKS = 30
ROUNDS = 3


def wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


def test_many_runners_at_once_run_every_task_exactly_once(project: Project) -> None:
    """16 runners started together on an empty database with 30 tasks, several rounds."""
    for round_number in range(ROUNDS):
        prefix = f"round{round_number}_"
        ledger = project.root / f"ledger{round_number}.txt"
        project.query(f"CREATE TABLE {prefix}effects (version VARCHAR(14))")
        for n in range(TASKS):
            version = f"202601010{n:05d}"
            project.write_task(version, f"task_{n}", f"""
                cur = ctx.db.cursor()
                cur.execute("INSERT INTO {prefix}effects (version) VALUES ('{version}')")
                with open({str(ledger)!r}, "a") as fh:
                    fh.write(ctx.version + "\\n")
            """)
        env = {"AFTERPARTY_TABLE_PREFIX": prefix}
        runners = [project.popen("run", extra_env=env) for _ in range(RUNNERS)]
        results = [(r.wait(timeout=300), *r.communicate()) for r in runners]
        for code, out, err in results:
            assert code == 0, out + err
            assert "already exists" not in out + err

        lines = ledger.read_text().split()
        assert len(lines) == TASKS and len(set(lines)) == TASKS
        effects = [row[0] for row in project.query(f"SELECT version FROM {prefix}effects")]
        assert sorted(effects) == sorted(set(lines))
        succeeded = project.query(
            f"SELECT version, COUNT(*) FROM {prefix}attempts WHERE state = 'succeeded' GROUP BY version")
        assert len(succeeded) == TASKS and all(count == 1 for _, count in succeeded)
        assert project.query(f"SELECT COUNT(*) FROM {prefix}attempts") == [(TASKS,)]
        printed = sum(1 for _, out, _ in results for line in out.splitlines()
                      if line[:1].isdigit() and " succeeded in " in line)
        assert printed == TASKS


def kill_mid_task(project: Project, started: Path) -> None:
    runner = project.popen("run")
    try:
        wait_for(started)
        runner.send_signal(signal.SIGKILL)
    finally:
        stop(runner)


def test_killed_transaction_task_is_completed_exactly_once(project: Project) -> None:
    started = project.root / "started"
    project.write_task("20260101000000", "make_table",
                       'ctx.db.cursor().execute("CREATE TABLE effects (note VARCHAR(20))")')
    assert project.cli("run").code == 0
    project.write_task("20260101000001", "db_only", f"""
        import time
        ctx.db.cursor().execute("INSERT INTO effects (note) VALUES ('once')")
        if ctx.attempt == 1:
            open({str(started)!r}, "w").close()
            time.sleep(120)
    """)
    kill_mid_task(project, started)
    assert project.query("SELECT note FROM effects") == []
    assert dict(project.query("SELECT name, state FROM afterparty_tasks"))["db_only"] == "running"

    result = project.cli("run")
    assert result.code == 0, result.both
    assert "marked interrupted" in result.out
    assert project.query("SELECT note FROM effects") == [("once",)]
    history = json.loads(project.cli("show", "db_only", "--json").out)["attempts"]
    assert [a["state"] for a in history] == ["interrupted", "succeeded"]


def test_killed_task_with_outside_effects_runs_again_by_default(project: Project) -> None:
    started, ledger = project.root / "started", project.root / "ledger.txt"
    project.write_task("20260101000001", "outside", f"""
        import time
        open({str(ledger)!r}, "a").write("effect\\n")
        if ctx.attempt == 1:
            open({str(started)!r}, "w").close()
            time.sleep(120)
    """)
    kill_mid_task(project, started)
    result = project.cli("run")
    assert result.code == 0, result.both
    assert ledger.read_text() == "effect\neffect\n"  # at least once: it ran again


def test_killed_task_on_hold_waits_for_a_human(project: Project) -> None:
    started, ledger = project.root / "started", project.root / "ledger.txt"
    project.write_task("20260101000001", "charge_cards", f"""
        import time
        open({str(ledger)!r}, "a").write("charged\\n")
        open({str(started)!r}, "w").close()
        time.sleep(120)
    """, options='description="Charge once", on_interrupt="hold"')
    project.write_task("20260101000002", "later", f"open({str(ledger)!r}, 'a').write('later\\n')")
    kill_mid_task(project, started)

    held = project.cli("run")
    assert held.code == 5, held.both
    assert "afterparty resolve 20260101000001 --retry" in held.both
    assert ledger.read_text() == "charged\n"
    assert project.cli("run", "--json").code == 5

    resolved = project.cli("resolve", "20260101000001", "--done", "--note", "checked the PSP")
    assert resolved.code == 0, resolved.both
    after = project.cli("run")
    assert after.code == 0, after.both
    assert ledger.read_text() == "charged\nlater\n"
    history = json.loads(project.cli("show", "charge_cards", "--json").out)["attempts"]
    assert [(a["action"], a["state"]) for a in history] == [
        ("run", "interrupted"), ("resolve --done", "succeeded")]
    assert history[1]["note"] == "checked the PSP"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_rolls_back_records_interrupted_and_releases_the_lock(
        project: Project, signum: int, code: int) -> None:
    started = project.root / "started"
    project.write_task("20260101000000", "make_table",
                       'ctx.db.cursor().execute("CREATE TABLE effects (note VARCHAR(20))")')
    project.write_task("20260101000001", "slow", f"""
        import time
        ctx.db.cursor().execute("INSERT INTO effects (note) VALUES ('x')")
        if ctx.attempt == 1:
            open({str(started)!r}, "w").close()
            time.sleep(120)
    """)
    runner = project.popen("run")
    try:
        wait_for(started)
        runner.send_signal(signum)
        assert runner.wait(timeout=30) == code
    finally:
        stop(runner)
    states = dict(project.query("SELECT name, state FROM afterparty_tasks"))
    assert states["slow"] == "interrupted"
    assert project.query("SELECT note FROM effects") == []
    again = project.cli("run", "--if-busy", "fail")  # the lock was released
    assert again.code == 0, again.both
    assert project.query("SELECT note FROM effects") == [("x",)]


def test_second_runner_waits_or_fails_while_the_lock_is_held(project: Project) -> None:
    started, release = project.root / "started", project.root / "release"
    project.write_task("20260101000001", "slow", f"""
        import os, time
        open({str(started)!r}, "w").close()
        while not os.path.exists({str(release)!r}):
            time.sleep(0.05)
    """)
    first = project.popen("run")
    waiter: subprocess.Popen[str] | None = None
    log = project.root / "waiter.log"
    try:
        wait_for(started)
        busy = project.cli("run", "--if-busy", "fail")
        assert busy.code == 3, busy.both
        assert f"pid {first.pid}" in busy.err
        assert len(busy.err.strip().splitlines()) == 1
        skipped = project.cli("run", "--if-busy", "skip")
        assert skipped.code == 0 and "skipped" in skipped.out
        timed_out = project.cli("run", "--wait", "0.5")
        assert timed_out.code == 3 and "after waiting 0.5 s" in timed_out.err

        waiter = project.popen_logged("run", log=log)
        # It says it waits once it found the lock taken: only then may the holder finish.
        wait_until(lambda: "waiting: another runner holds the lock" in log.read_text(),
                   "the second runner waiting for the lock")
        assert waiter.poll() is None
        release.write_text("")
        assert first.wait(timeout=60) == 0
        assert waiter.wait(timeout=60) == 0, log.read_text()
    finally:
        release.write_text("")
        stop(first)
        if waiter is not None:
            stop(waiter)
    assert "no pending tasks" in log.read_text()
    attempts = project.query("SELECT COUNT(*) FROM afterparty_attempts")
    assert attempts == [(1,)]
    # The waiter saw, lock-free, that nothing was left and never took the lock itself.
    holder = project.query("SELECT meta_value FROM afterparty_meta WHERE meta_key = 'lock_holder'")
    assert f"pid {first.pid}," in str(holder[0][0])


def test_runners_with_different_prefixes_do_not_block_each_other(project: Project) -> None:
    started, release = project.root / "started", project.root / "release"
    project.write_task("20260101000001", "slow", f"""
        import os, time
        if os.environ.get("AFTERPARTY_TABLE_PREFIX") != "otherapp_":
            open({str(started)!r}, "w").close()
            while not os.path.exists({str(release)!r}):
                time.sleep(0.05)
    """)
    first = project.popen("run")
    try:
        wait_for(started)
        other = project.cli("run", "--if-busy", "fail", "20260101000001",
                            extra_env={"AFTERPARTY_TABLE_PREFIX": "otherapp_"})
        # The other application's runner takes its own lock and runs the task for itself.
        assert other.code == 0, other.both
    finally:
        release.write_text("")
        assert first.wait(timeout=60) == 0
    assert project.query("SELECT COUNT(*) FROM otherapp_attempts") == [(1,)]
    assert project.query("SELECT COUNT(*) FROM afterparty_attempts") == [(1,)]
