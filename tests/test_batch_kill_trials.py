"""Kill trials for batches: a 20-batch task SIGKILLed at random moments; after every kill the
committed batches and the checkpoint agree, and after the next run every batch's rows exist
exactly once.

AFTERPARTY_BATCH_KILL_TRIALS sets the number of trials per backend (default 10).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from conftest import Project, stop, wait_until

BATCHES = 20
ROWS = 10
TRIALS = int(os.environ.get("AFTERPARTY_BATCH_KILL_TRIALS", "10"))


def write_backfill(project: Project, table: str, started: Path) -> None:
    project.write_task("20260101000000", "backfill", f"""
        import random, time
        open({str(started)!r}, "w").close()
        for i in range(ctx.checkpoint.get(0), {BATCHES}):
            with ctx.batch(checkpoint=i + 1):
                for n in range({ROWS}):
                    ctx.db.execute("INSERT INTO {table} (batch, n) VALUES (%s, %s)", (i, n))
                time.sleep(random.random() / 50)
            ctx.progress(i + 1, total={BATCHES})
    """, options="atomic=False")


def committed(project: Project, table: str, prefix: str) -> tuple[dict[int, int], object]:
    counts = {int(b): int(c) for b, c in project.query(  # type: ignore[call-overload]
        f"SELECT batch, COUNT(*) FROM {table} GROUP BY batch")}
    rows = project.query(f"SELECT checkpoint FROM {prefix}checkpoints")
    return counts, (int(str(rows[0][0])) if rows else 0)


def test_batches_survive_sigkill_at_random_moments_exactly_once(project: Project, tmp_path: Path) -> None:
    rng = random.Random(20261126)
    kills = 0
    for trial in range(TRIALS):
        prefix, table = f"k{trial}_", f"k{trial}_backfilled"
        env = {"AFTERPARTY_TABLE_PREFIX": prefix}
        started = tmp_path / f"started_{trial}"
        project.query(f"CREATE TABLE {table} (batch INTEGER, n INTEGER)")
        write_backfill(project, table, started)
        runner = project.popen("run", extra_env=env)
        try:
            wait_until(started.exists, f"trial {trial}: the task running")
            # 20 batches take about 0.2 s: a moment in between lands before, inside or
            # between batches, or in the commit of one.
            deadline = time.monotonic() + rng.uniform(0.0, 0.25)
            while time.monotonic() < deadline and runner.poll() is None:
                time.sleep(0.005)
            if runner.poll() is None:
                runner.send_signal(signal.SIGKILL)
                kills += 1
            runner.wait(timeout=60)
        finally:
            stop(runner)

        counts, checkpoint = committed(project, table, prefix)
        assert isinstance(checkpoint, int)
        # What was committed is exactly the batches before the checkpoint, each whole.
        assert counts == {i: ROWS for i in range(checkpoint)}, (trial, counts, checkpoint)

        result = project.cli("run", extra_env=env)
        assert result.code == 0, result.both
        counts, checkpoint = committed(project, table, prefix)
        assert counts == {i: ROWS for i in range(BATCHES)}, (trial, counts)
        assert checkpoint == BATCHES
    print(f"\n{project.database_url.split(':')[0]}: {TRIALS} trials, {kills} runners killed mid-run, "
          "every batch exactly once")
    assert kills >= TRIALS // 2, f"only {kills} of {TRIALS} runners were killed mid-run"
