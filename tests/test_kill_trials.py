"""Kill trials: runners SIGKILLed at random moments, then a clean run; ctx.db work must end up
done exactly once, and an outside effect repeated at most once per kill.

AFTERPARTY_KILL_TRIALS sets the number of trials per backend (default 4); the closing figures
of the project come from a larger number.
"""

from __future__ import annotations

import os
import random
import signal
import time

from conftest import Project

TASKS = 12
TRIALS = int(os.environ.get("AFTERPARTY_KILL_TRIALS", "4"))


def write_tasks(project: Project, prefix: str) -> None:
    ledger = project.root / f"{prefix}ledger.txt"
    for n in range(TASKS):
        version = f"20260101{n:06d}"
        project.write_task(version, f"task_{n}", f"""
            import random, time
            ctx.db.cursor().execute("INSERT INTO {prefix}effects (version) VALUES ('{version}')")
            with open({str(ledger)!r}, "a") as fh:
                fh.write(ctx.version + "\\n")
            time.sleep(random.random() / 10)
        """)


def test_runners_killed_at_random_moments_lose_and_repeat_no_database_work(project: Project) -> None:
    rng = random.Random(20261126)
    total_kills = repeated_effects = 0
    for trial in range(TRIALS):
        prefix = f"t{trial}_"
        env = {"AFTERPARTY_TABLE_PREFIX": prefix}
        for stale in project.tasks_dir.glob("*.py"):
            stale.unlink()
        project.query(f"CREATE TABLE {prefix}effects (version VARCHAR(14))")
        write_tasks(project, prefix)
        kills = 0
        for _ in range(2):
            runners = [project.popen("run", extra_env=env) for _ in range(2)]
            try:
                # A runner starts in about 0.15 s and needs about 0.6 s for the tasks: a
                # moment in between lands before, inside or between tasks.
                deadline = time.monotonic() + rng.uniform(0.1, 0.9)
                while time.monotonic() < deadline and any(r.poll() is None for r in runners):
                    time.sleep(0.01)
                alive = [r for r in runners if r.poll() is None]
                if alive:
                    rng.choice(alive).send_signal(signal.SIGKILL)
                    kills += 1
            finally:
                for runner in runners:
                    if runner.poll() is None:
                        runner.wait(timeout=120)
                    runner.communicate()
        final = project.cli("run", extra_env=env)
        assert final.code == 0, final.both

        effects = [row[0] for row in project.query(f"SELECT version FROM {prefix}effects")]
        assert sorted(effects) == sorted(set(effects)), f"trial {trial}: ctx.db work repeated"
        assert len(effects) == TASKS, f"trial {trial}: ctx.db work lost"
        states = project.query(f"SELECT state, COUNT(*) FROM {prefix}tasks GROUP BY state")
        assert states == [("succeeded", TASKS)]
        ledger = (project.root / f"{prefix}ledger.txt").read_text().split()
        assert set(ledger) == set(effects)
        assert len(ledger) - TASKS <= kills, f"trial {trial}: an outside effect ran twice without a kill"
        total_kills += kills
        repeated_effects += len(ledger) - TASKS
    backend = project.database_url.split(":", 1)[0]
    print(f"\n{backend}: {TRIALS} trials, {total_kills} runners killed, ctx.db work repeated 0 "
          f"and lost 0 times, outside effects repeated {repeated_effects} times")
